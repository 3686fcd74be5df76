package acl

import (
	"fmt"
	"strconv"
)

// Quota kinds: the data-plane bytes a quota paces. They share their names
// with the actions they pace.
const (
	QuotaProduce = ActionProduce
	QuotaConsume = ActionConsume
)

// QuotaEveryone is the subject of a quota line that applies to every
// identity without a quota of its own or of one of its roles.
const QuotaEveryone = "*"

// MaxQuotaBytesPerSecond bounds a quota's rate (1 TiB/s): a larger number
// is a typo, not a limit.
const MaxQuotaBytesPerSecond = 1 << 40

// Quota is one "q" line: identities that are (or hold the role) Subject
// may produce or consume (Kind) at most BytesPerSecond bytes of record
// keys and values per second on each broker. Past it the broker delays
// their requests (it throttles, never fails them), as Kafka's client
// quotas do.
type Quota struct {
	Subject        string
	Kind           string
	BytesPerSecond int64
}

func parseQuota(f []string) (Quota, error) {
	if len(f) != 4 {
		return Quota{}, fmt.Errorf("q line has %d fields, want 4: q, subject, produce|consume, bytes-per-second", len(f))
	}
	q := Quota{Subject: f[1], Kind: f[2]}
	if q.Subject != QuotaEveryone {
		if err := checkField("subject", q.Subject, false); err != nil {
			return Quota{}, err
		}
	}
	if q.Kind != QuotaProduce && q.Kind != QuotaConsume {
		return Quota{}, fmt.Errorf("quota kind %q, want produce or consume", q.Kind)
	}
	n, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || n < 1 || n > MaxQuotaBytesPerSecond {
		return Quota{}, fmt.Errorf("quota rate %q, want whole bytes per second in [1, %d]", f[3], int64(MaxQuotaBytesPerSecond))
	}
	q.BytesPerSecond = n
	return q, nil
}

// QuotaFor is the rate (bytes per second) that paces identity's kind
// (QuotaProduce or QuotaConsume) bytes, and false when nothing limits it.
// The most specific line wins: the identity's own; else the most generous
// of the roles it holds (directly or through other roles), since roles
// grant; else the line for "*".
func (p *Policy) QuotaFor(identity, kind string) (int64, bool) {
	var own, everyone int64
	byRole := map[string]int64{}
	for _, q := range p.Quotas {
		if q.Kind != kind {
			continue
		}
		switch q.Subject {
		case identity:
			own = q.BytesPerSecond
		case QuotaEveryone:
			everyone = q.BytesPerSecond
		default:
			byRole[q.Subject] = q.BytesPerSecond
		}
	}
	if own > 0 {
		return own, true
	}
	var best int64
	for role := range p.rolesOf(identity) {
		best = max(best, byRole[role])
	}
	if best > 0 {
		return best, true
	}
	return everyone, everyone > 0
}

// rolesOf is every role identity holds, directly or through other roles.
func (p *Policy) rolesOf(identity string) map[string]bool {
	held := map[string]bool{}
	frontier := []string{identity}
	for len(frontier) > 0 {
		name := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		for _, b := range p.Bindings {
			if globMatch(name, b.Identity) && !held[b.Role] && b.Role != identity {
				held[b.Role] = true
				frontier = append(frontier, b.Role)
			}
		}
	}
	return held
}
