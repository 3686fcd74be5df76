package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the parsed templates, one per page, each with the layout.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"pathEscape": url.PathEscape,
	"num":        formatInt,
	"bytes":      formatBytes,
	"rate":       formatRate,
	"ts":         func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"ids":        formatIDs,
	"ms":         func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) },
	"days": func(now, t time.Time) string {
		d := t.Sub(now)
		days := int(math.Round(d.Hours() / 24))
		if d < 0 {
			return fmt.Sprintf("expired %d days ago", -days)
		}
		return fmt.Sprintf("%d days", days)
	},
	"add": func(a, b int64) int64 { return a + b },
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console: %s: %w", base, err)
		}
		p.byName[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// view is what every page's layout gets; Page is the page's own data.
type view struct {
	Base     string
	Title    string
	Nav      string
	Identity string
	CSRF     string
	Now      time.Time
	// Notice is a banner: what could not be read, and why.
	Notice string
	Page   any
}

// render writes page name with status. The page is rendered whole before
// anything is sent, so a template failure is a clean 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title, nav, notice string, page any) {
	t, ok := c.pages.byName[name]
	if !ok {
		c.lg.Error("console page without template", zap.String("page", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	id := c.opts.Identity(r.Context())
	v := view{Base: c.opts.Base, Title: title, Nav: nav, Identity: id, CSRF: c.csrf.token(id),
		Now: c.opts.Now(), Notice: notice, Page: page}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.lg.Error("console page failed to render", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		c.lg.Debug("console response write failed", zap.Error(err))
	}
}

// errorPage is the data of the error page.
type errorPage struct {
	Status  int
	Text    string
	Message string
}

// fail answers an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", fmt.Sprintf("%d %s", status, http.StatusText(status)), "", "",
		errorPage{Status: status, Text: http.StatusText(status), Message: msg})
}

// serveStatic serves the embedded CSS and JavaScript.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "*")
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "..") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.Header().Set("Cache-Control", "private, max-age=300")
	if _, err := w.Write(b); err != nil {
		return // the client left
	}
}

func formatInt(v int64) string {
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return formatRate(v) + " " + units[i]
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

func formatRate(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v >= 10 || v == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

func formatIDs(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ", ")
}
