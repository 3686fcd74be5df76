package acl

import "strings"

// globMatch reports whether name matches pattern, where "*" in pattern
// stands for any run of characters (including none) and every other
// character stands for itself. A pattern without "*" matches only itself.
func globMatch(name, pattern string) bool {
	if !strings.Contains(pattern, "*") {
		return name == pattern
	}
	parts := strings.Split(pattern, "*")
	first, last := parts[0], parts[len(parts)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	rest := name[len(first) : len(name)-len(last)]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return true
}

// objectMatch is globMatch except that the object "cluster" is matched
// only by the pattern "cluster", and that pattern only by it, and that a
// group object ("group:NAME") is matched only by group patterns
// ("group:PATTERN") and they only by groups: "*" means every topic, never
// every group.
func objectMatch(object, pattern string) bool {
	if object == ObjectCluster || pattern == ObjectCluster {
		return object == pattern
	}
	og, pg := strings.HasPrefix(object, GroupPrefix), strings.HasPrefix(pattern, GroupPrefix)
	if og != pg {
		return false
	}
	return globMatch(object, pattern)
}
