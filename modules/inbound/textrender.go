package inbound

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlText renders HTML nodes as plain text for the text form of an
// HTML-only message: paragraphs and line breaks kept, list items with
// "* ", quotes with "> ", image descriptions in brackets, links as
// "text (url)" for http, https and mailto only (the sanitiser drops the
// others), and nothing from scripts, styles, the head, frames or objects.
func htmlText(nodes ...*html.Node) string {
	r := &textRenderer{}
	for _, n := range nodes {
		r.node(n)
	}
	return r.String()
}

// textRenderer accumulates text, owing newlines and spaces until the next
// word so that blocks never produce runs of blank lines or stray spaces.
type textRenderer struct {
	b     strings.Builder
	quote int // blockquote depth
	pre   int // inside <pre>
	nl    int // newlines owed before the next text
	// nlQuote is the smallest quote depth seen while newlines were owed:
	// a blank line between two depths belongs to the outer one.
	nlQuote int
	space   bool
}

// skipped elements contribute no text (the sanitiser drops their content too).
var skipped = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Head: true, atom.Title: true, atom.Template: true,
	atom.Noscript: true, atom.Iframe: true, atom.Object: true, atom.Embed: true, atom.Frame: true,
	atom.Frameset: true, atom.Noframes: true, atom.Noembed: true, atom.Svg: true, atom.Math: true,
}

// paragraphs are separated by a blank line, other blocks by a line break.
var paragraphs = map[atom.Atom]bool{
	atom.P: true, atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true,
	atom.H6: true, atom.Ul: true, atom.Ol: true, atom.Dl: true, atom.Table: true, atom.Pre: true,
	atom.Blockquote: true, atom.Figure: true,
}

var blocks = map[atom.Atom]bool{
	atom.Div: true, atom.Tr: true, atom.Section: true, atom.Article: true, atom.Aside: true,
	atom.Header: true, atom.Footer: true, atom.Address: true, atom.Center: true, atom.Dt: true,
	atom.Dd: true, atom.Form: true, atom.Fieldset: true, atom.Caption: true, atom.Details: true,
	atom.Summary: true, atom.Nav: true, atom.Main: true, atom.Figcaption: true, atom.Hgroup: true,
}

func (r *textRenderer) node(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		r.text(n.Data)
		return
	case html.DocumentNode:
		r.children(n)
		return
	case html.ElementNode:
	default:
		return
	}
	a := n.DataAtom
	switch {
	case skipped[a]:
	case a == atom.Br:
		r.breakLine(1)
	case a == atom.Hr:
		r.breakLine(1)
		r.text("----")
		r.breakLine(1)
	case a == atom.Img:
		if alt := strings.TrimSpace(attr(n, "alt")); alt != "" {
			r.text("[" + alt + "]")
		}
	case a == atom.A:
		r.link(n)
	case a == atom.Li:
		r.breakLine(1)
		r.text("* ")
		r.children(n)
		r.breakLine(1)
	case a == atom.Td || a == atom.Th:
		r.children(n)
		r.space = true
	case a == atom.Blockquote:
		r.breakLine(2)
		r.quote++
		r.children(n)
		r.breakLine(2)
		r.quote--
	case a == atom.Pre:
		r.breakLine(2)
		r.pre++
		r.children(n)
		r.pre--
		r.breakLine(2)
	case paragraphs[a]:
		r.breakLine(2)
		r.children(n)
		r.breakLine(2)
	case blocks[a]:
		r.breakLine(1)
		r.children(n)
		r.breakLine(1)
	default:
		r.children(n)
	}
}

func (r *textRenderer) children(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		r.node(c)
	}
}

// link writes the link text, then the target in parentheses when it is a
// web or mail address different from the text.
func (r *textRenderer) link(n *html.Node) {
	r.children(n)
	href := strings.TrimSpace(attr(n, "href"))
	if href == "" {
		return
	}
	u, err := url.Parse(href)
	if err != nil {
		return
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "mailto":
	default:
		return
	}
	label := strings.TrimSpace(leadingText(n, len(href)+1))
	if label != href && label != strings.TrimPrefix(href, "mailto:") {
		r.text(" (" + href + ")")
	}
}

// breakLine owes n newlines (1: a line break, 2: a blank line) before the next text.
func (r *textRenderer) breakLine(n int) {
	if r.nl == 0 || r.quote < r.nlQuote {
		r.nlQuote = r.quote
	}
	if r.b.Len() > 0 && n > r.nl {
		r.nl = n
	}
	r.space = false
}

// flush writes the owed newlines, each line starting with the quote marks.
func (r *textRenderer) flush() {
	if r.b.Len() == 0 {
		r.nl = 0
		r.b.WriteString(r.prefix())
		return
	}
	for i := 0; i < r.nl; i++ {
		r.b.WriteByte('\n')
		if i < r.nl-1 {
			r.b.WriteString(strings.Repeat(">", min(r.nlQuote, r.quote)))
		} else {
			r.b.WriteString(r.prefix())
		}
	}
	r.nl = 0
}

func (r *textRenderer) prefix() string {
	if r.quote == 0 {
		return ""
	}
	return strings.Repeat(">", r.quote) + " "
}

// text writes s, collapsing whitespace outside <pre>.
func (r *textRenderer) text(s string) {
	if r.pre > 0 {
		for i, line := range strings.Split(s, "\n") {
			if i > 0 {
				r.nl++
			}
			if line != "" || i > 0 {
				if r.nl > 0 || r.b.Len() == 0 {
					r.flush()
				}
				r.b.WriteString(line)
			}
		}
		return
	}
	for i, word := range strings.Fields(s) {
		if r.nl > 0 || r.b.Len() == 0 {
			r.flush()
		} else if i > 0 || r.space || startsWithSpace(s) {
			r.b.WriteByte(' ')
		}
		r.space = false
		r.b.WriteString(word)
	}
	if len(s) > 0 && endsWithSpace(s) {
		r.space = true
	}
}

// startsWithSpace and endsWithSpace use strings.Fields' notion of space
// (Unicode, so a no-break space separates words in the text form too).
func startsWithSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

func endsWithSpace(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return unicode.IsSpace(r)
}

// String returns the text, each line without trailing spaces.
func (r *textRenderer) String() string {
	lines := strings.Split(r.b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	out, _ := cleanText(strings.Join(lines, "\n"))
	return strings.TrimSpace(out)
}
