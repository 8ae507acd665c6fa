package e2e

// The README's and docs/'s links, as a reader on GitHub follows them: every
// relative link names a file or folder of the repository, and every
// #fragment a heading of the page it points into (GitHub's anchors).

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

func TestDocsLinksResolve(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(repoRoot, "README.md")}, pages...)
	anchors := map[string]map[string]bool{} // by page, read once
	anchorsOf := func(page string) map[string]bool {
		if a, ok := anchors[page]; ok {
			return a
		}
		a := markdownAnchors(t, page)
		anchors[page] = a
		return a
	}
	checked := 0
	for _, page := range pages {
		name, _ := filepath.Rel(repoRoot, page)
		for _, l := range markdownLinks(t, page) {
			if regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`).MatchString(l.target) {
				continue // https:, mailto:
			}
			checked++
			path, fragment, _ := strings.Cut(l.target, "#")
			target := page
			if path != "" {
				target = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
				rel, err := filepath.Rel(repoRoot, target)
				if err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s:%d: %s leaves the repository", name, l.line, l.target)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s:%d: %s: no such file or folder", name, l.line, l.target)
					continue
				}
			}
			if fragment == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s:%d: %s: a fragment on a page that is not Markdown", name, l.line, l.target)
				continue
			}
			if !anchorsOf(target)[fragment] {
				t.Errorf("%s:%d: %s: no heading of %s has the anchor #%s", name, l.line, l.target, filepath.Base(target), fragment)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d relative links found in README.md and docs/*.md: the link reader is broken", checked)
	}
}

// The link checker itself: GitHub's anchors of a few kinds of headings,
// and links found where a reader sees them, not in code.
func TestDocsLinkReader(t *testing.T) {
	page := filepath.Join(t.TempDir(), "page.md")
	text := "# Top\n" +
		"## `POST /api/v1/users/check-username`\n" +
		"## Reviewing a change: `gateway validate -diff`\n" +
		"### cache.routes.`<route>`\n" +
		"## Top\n" +
		"#### Where the username check's gap goes\n" +
		"## Şükrü, Işık & co. (tr)\n" +
		"see [a](other.md#x) and `[not](a-link.md)`\n" +
		"```sh\n# not a heading\n[nor](this.md)\n```\n" +
		"[b](#top-1) [c](../up.md)\n"
	if err := os.WriteFile(page, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	for a := range markdownAnchors(t, page) {
		got = append(got, a)
	}
	want := []string{"top", "post-apiv1userscheck-username", "reviewing-a-change-gateway-validate--diff",
		"cacheroutesroute", "top-1", "where-the-username-checks-gap-goes", "şükrü-işık--co-tr"}
	for _, w := range want {
		if !markdownAnchors(t, page)[w] {
			t.Errorf("no anchor %q; have %q", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("anchors %q, want %q", got, want)
	}
	var links []string
	for _, l := range markdownLinks(t, page) {
		links = append(links, l.target)
	}
	if strings.Join(links, " ") != "other.md#x #top-1 ../up.md" {
		t.Errorf("links %q, want other.md#x #top-1 ../up.md", links)
	}
}

type markdownLink struct {
	line   int
	target string
}

var (
	linkRe     = regexp.MustCompile(`\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)
	codeSpanRe = regexp.MustCompile("`[^`]*`")
	headingRe  = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	anchorRe   = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
)

// markdownLines calls fn with each line of page outside fenced code
// blocks, with its number.
func markdownLines(t *testing.T, page string, fn func(n int, line string)) {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	fenced := false
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			fn(i+1, line)
		}
	}
}

// markdownLinks lists page's inline links, outside code.
func markdownLinks(t *testing.T, page string) []markdownLink {
	var links []markdownLink
	markdownLines(t, page, func(n int, line string) {
		for _, m := range linkRe.FindAllStringSubmatch(codeSpanRe.ReplaceAllString(line, ""), -1) {
			links = append(links, markdownLink{n, m[1]})
		}
	})
	return links
}

// markdownAnchors is the set of anchors GitHub gives page: each heading's
// text in lower case, without punctuation, spaces made hyphens, a repeated
// one suffixed -1, -2, …; and explicit <a name|id>.
func markdownAnchors(t *testing.T, page string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	markdownLines(t, page, func(_ int, line string) {
		for _, m := range anchorRe.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		m := headingRe.FindStringSubmatch(line)
		if m == nil {
			return
		}
		// The text as shown: a link's text, code without its backticks.
		text := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(m[2], "$1")
		var slug strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				slug.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
				slug.WriteRune(r)
			}
		}
		s := slug.String()
		if n := seen[s]; n > 0 {
			anchors[s+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[s] = true
		}
		seen[s]++
	})
	return anchors
}
