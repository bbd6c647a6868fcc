package inbound

import (
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// newPolicy builds the HTML allow-list: bluemonday's UGC policy, stricter.
// Kept: text structure (paragraphs, headings, lists, tables, quotes, inline
// emphasis), links to http, https and mailto (rel="nofollow noreferrer",
// target=_blank), images whose source is an attachment of the message
// (cid:) or inline data. Removed: scripts, styles and style attributes,
// event handlers, forms, frames, class and id (mail classes and ids must not
// meet the application's CSS and scripts), relative URLs (they would resolve
// against PatchDesk itself), javascript: and every other scheme, and remote
// images: an agent opening a ticket must not tell the sender (tracking
// pixels) or load third-party content; Parse replaces them by their alt text.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowStandardURLs()
	p.AllowRelativeURLs(false)
	p.AllowURLSchemes("cid")
	p.AllowDataURIImages()
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)

	p.AllowAttrs("dir").Matching(bluemonday.Direction).Globally()
	p.AllowAttrs("lang").Matching(regexp.MustCompile(`^[a-zA-Z]{2,8}(-[a-zA-Z0-9]{1,8}){0,3}$`)).Globally()
	p.AllowAttrs("title").Matching(bluemonday.Paragraph).Globally()

	p.AllowElements("article", "aside", "section", "figure", "figcaption", "summary", "details",
		"h1", "h2", "h3", "h4", "h5", "h6", "hgroup",
		"blockquote", "br", "div", "hr", "p", "span", "wbr", "pre", "center", "font",
		"abbr", "acronym", "cite", "code", "dfn", "em", "mark", "q", "s", "samp", "strong",
		"sub", "sup", "var", "b", "i", "small", "strike", "tt", "u", "del", "ins", "kbd", "big")
	p.AllowAttrs("href").OnElements("a")
	// SVG is left out even as data: an SVG image cannot run script in an
	// <img>, but opened on its own it can.
	p.AllowAttrs("src").Matching(regexp.MustCompile(`(?i)^(cid:|data:image/(png|jpeg|gif|webp);base64,)`)).OnElements("img")
	p.AllowAttrs("alt").Matching(bluemonday.Paragraph).OnElements("img")
	p.AllowAttrs("height", "width").Matching(bluemonday.NumberOrPercent).OnElements("img")
	p.AllowLists()
	p.AllowTables()
	return p
}

// policy is the compiled allow-list; a bluemonday Policy is safe for
// concurrent use once built, and building it compiles regular expressions.
var policy = newPolicy()

// textOnly keeps text and drops every element.
var textOnly = bluemonday.StrictPolicy()

// strippedText is the text of sanitised HTML, whitespace collapsed.
func strippedText(clean string) string {
	t, _ := cleanText(html.UnescapeString(textOnly.Sanitize(clean)))
	return strings.Join(strings.Fields(t), " ")
}

// SanitizeHTML returns s reduced to the allow-list of newPolicy, valid UTF-8
// without NUL. Parse applies it to every HTML body it returns; it is
// exported for HTML that reaches the pipeline by another way.
func SanitizeHTML(s string) string {
	s, _ = cleanText(s)
	out, _ := cleanText(policy.Sanitize(s))
	return strings.TrimSpace(out)
}

// htmlBodies is one HTML part read once: the whole body, the new part and
// the quoted history, each sanitised, with their plain-text renderings.
type htmlBodies struct {
	body, fresh, quoted Body
	remoteImages        int
	unparsed            error // the HTML tree could not be built
}

// readHTML parses raw HTML, replaces remote images by their alt text, cuts
// the quoted history (unless cut is false: forwarded messages keep it all)
// and sanitises each part.
func readHTML(raw string, cut bool) htmlBodies {
	doc, err := html.Parse(strings.NewReader(raw))
	if err != nil {
		// The parser refuses nesting deeper than 512 elements. The
		// sanitiser streams tokens and has no such limit: keep the body
		// whole, uncut, with a text form that is just its text.
		clean := SanitizeHTML(raw)
		b := Body{HTML: clean, Text: strippedText(clean)}
		return htmlBodies{body: b, fresh: b, unparsed: err}
	}
	var out htmlBodies
	out.remoteImages = dropRemoteImages(doc)
	var history []*html.Node
	if cut {
		history = splitTree(doc)
	}
	out.fresh = sanitizedBody(bodyNodes(doc))
	out.body = out.fresh
	if history == nil {
		return out
	}
	// The whole body is the two parts one after the other: sanitising and
	// rendering once per part is the dominant cost of Parse.
	out.quoted = sanitizedBody(history)
	out.body = Body{
		HTML: out.fresh.HTML + "\n" + out.quoted.HTML,
		Text: strings.TrimSpace(out.fresh.Text + "\n\n" + out.quoted.Text),
	}
	return out
}

// sanitizedBody renders nodes as sanitised HTML and as plain text.
func sanitizedBody(nodes []*html.Node) Body {
	return Body{HTML: SanitizeHTML(renderNodes(nodes)), Text: htmlText(nodes...)}
}

// SplitHTML separates an HTML reply into the new part and the quoted
// history, both sanitised (see SanitizeHTML). It recognises Gmail
// (div.gmail_quote), Apple Mail and Thunderbird (blockquote type="cite",
// div.moz-cite-prefix), Yahoo, Proton, Outlook on the web (div#divRplyFwdMsg
// and the rule above it), Outlook desktop (the "From: … Sent: …" block) and
// "-----Original Message-----" separators. A quote followed by unquoted text
// (an interleaved or bottom-posted reply) is not cut, and neither is a
// message whose new part would be empty: quoted is then "".
func SplitHTML(raw string) (fresh, quoted string) {
	b := readHTML(raw, true)
	return b.fresh.HTML, b.quoted.HTML
}

// bodyNodes returns the children of <body>, or the document itself.
func bodyNodes(doc *html.Node) []*html.Node {
	if body := findElement(doc, atom.Body); body != nil {
		var out []*html.Node
		for c := body.FirstChild; c != nil; c = c.NextSibling {
			out = append(out, c)
		}
		return out
	}
	return []*html.Node{doc}
}

func findElement(n *html.Node, a atom.Atom) *html.Node {
	if n.Type == html.ElementNode && n.DataAtom == a {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := findElement(c, a); f != nil {
			return f
		}
	}
	return nil
}

func renderNodes(nodes []*html.Node) string {
	var b strings.Builder
	for _, n := range nodes {
		_ = html.Render(&b, n) // a strings.Builder never fails to write
	}
	return b.String()
}

// dropRemoteImages replaces every <img> whose source is neither an
// attachment (cid:) nor inline data by its alt text in brackets, and
// returns how many it replaced.
func dropRemoteImages(n *html.Node) int {
	count := 0
	for c := n.FirstChild; c != nil; {
		next := c.NextSibling
		if c.Type == html.ElementNode && c.DataAtom == atom.Img {
			src := strings.ToLower(strings.TrimSpace(attr(c, "src")))
			if !strings.HasPrefix(src, "cid:") && !strings.HasPrefix(src, "data:") {
				count++
				if alt := strings.TrimSpace(attr(c, "alt")); alt != "" {
					n.InsertBefore(&html.Node{Type: html.TextNode, Data: "[" + alt + "]"}, c)
				}
				n.RemoveChild(c)
			}
		} else {
			count += dropRemoteImages(c)
		}
		c = next
	}
	return count
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if strings.EqualFold(c, class) {
			return true
		}
	}
	return false
}

// quoteKind tells how a marker's history ends.
type quoteKind int

const (
	notQuote quoteKind = iota
	// containerQuote holds the history inside it (a blockquote, Gmail's
	// div): text after it, outside quotes, means an interleaved reply.
	containerQuote
	// headerQuote starts the history: everything after it is the old message.
	headerQuote
)

// quoteContainerClasses are the classes mail clients put on the element
// holding the quoted message.
var quoteContainerClasses = []string{"gmail_quote", "gmail_quote_container", "yahoo_quoted", "protonmail_quote", "moz-cite-prefix", "zmail_extra"}

// quoteHeaderIDs are the ids of the element starting the quoted message.
var quoteHeaderIDs = []string{"divRplyFwdMsg", "mail-editor-reference-message-container", "x_divRplyFwdMsg"}

// classifyNode reports whether n starts the quoted history.
func classifyNode(n *html.Node) quoteKind {
	if n.Type != html.ElementNode {
		return notQuote
	}
	if n.DataAtom == atom.Blockquote && strings.EqualFold(attr(n, "type"), "cite") {
		return containerQuote
	}
	for _, c := range quoteContainerClasses {
		if hasClass(n, c) {
			return containerQuote
		}
	}
	for _, id := range quoteHeaderIDs {
		if strings.EqualFold(attr(n, "id"), id) {
			return headerQuote
		}
	}
	if n.DataAtom == atom.Div || n.DataAtom == atom.P {
		if isHeaderBlock(leadingText(n, 600)) {
			return headerQuote
		}
	}
	return notQuote
}

// leadingText returns about limit bytes of n's text, lines kept. It visits
// at most 4×limit nodes, so that asking it of every element of a deeply
// nested tree stays linear in the tree's size.
func leadingText(n *html.Node, limit int) string {
	var b strings.Builder
	budget := 4 * limit
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		budget--
		switch {
		case n.Type == html.TextNode:
			b.WriteString(truncate(n.Data, limit))
		case n.Type == html.ElementNode && (n.DataAtom == atom.Br || n.DataAtom == atom.P || n.DataAtom == atom.Div):
			b.WriteString("\n")
		case n.Type == html.ElementNode && (n.DataAtom == atom.Script || n.DataAtom == atom.Style):
			return
		}
		for c := n.FirstChild; c != nil && b.Len() < limit && budget > 0; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// isHeaderBlock reports text that opens with an Outlook reply header
// ("From: … Sent: …") or an "Original Message" separator.
func isHeaderBlock(text string) bool {
	lines := nonBlankLines(text, 8)
	if len(lines) == 0 {
		return false
	}
	if originalMessage.MatchString(lines[0]) {
		return true
	}
	return outlookHeaderAt(lines, 0)
}

// nonBlankLines returns up to limit trimmed non-blank lines of s.
func nonBlankLines(s string, limit int) []string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(strings.ReplaceAll(line, "\u00a0", " "))
		if line == "" {
			continue
		}
		out = append(out, line)
		if len(out) == limit {
			break
		}
	}
	return out
}

// splitTree finds the first quote marker in doc and moves it and everything
// after it (in document order) out of doc, returning the moved nodes; nil
// when there is no marker, when the new part would be empty, or when the
// quote is interleaved with new text.
func splitTree(doc *html.Node) []*html.Node {
	root := doc
	if body := findElement(doc, atom.Body); body != nil {
		root = body
	}
	start, kind := findMarker(root)
	if start == nil {
		return nil
	}
	if kind == containerQuote && hasTextAfter(root, start) {
		return nil // interleaved or bottom-posted: the new text is among the quotes
	}
	if prev := prevElement(start); prev != nil && prev.DataAtom == atom.Hr && kind == headerQuote {
		start = prev // Outlook on the web draws a rule above its header
	}
	if !hasContentBefore(root, start) {
		return nil
	}
	return detachFrom(root, start)
}

// findMarker walks in document order for the first quote marker, including
// a text node carrying an "Original Message" separator (split off so the
// text before it stays in the new part).
func findMarker(n *html.Node) (*html.Node, quoteKind) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if k := classifyNode(c); k != notQuote {
			return c, k
		}
		if c.Type == html.TextNode {
			if m := originalMessageInline.FindStringIndex(c.Data); m != nil {
				if m[0] == 0 {
					return c, headerQuote
				}
				rest := &html.Node{Type: html.TextNode, Data: c.Data[m[0]:]}
				c.Data = c.Data[:m[0]]
				n.InsertBefore(rest, c.NextSibling)
				return rest, headerQuote
			}
		}
		if f, k := findMarker(c); f != nil {
			return f, k
		}
	}
	return nil, notQuote
}

func prevElement(n *html.Node) *html.Node {
	for p := n.PrevSibling; p != nil; p = p.PrevSibling {
		if p.Type == html.ElementNode {
			return p
		}
		if p.Type == html.TextNode && strings.TrimSpace(p.Data) != "" {
			return nil
		}
	}
	return nil
}

// hasContentBefore reports visible text or an image before stop in document order.
func hasContentBefore(root, stop *html.Node) bool {
	found, done := false, false
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil && !done && !found; c = c.NextSibling {
			switch {
			case c == stop:
				done = true
			case c.Type == html.TextNode && strings.TrimSpace(strings.ReplaceAll(c.Data, "\u00a0", " ")) != "":
				found = true
			case c.Type == html.ElementNode && c.DataAtom == atom.Img:
				found = true
			case c.Type == html.ElementNode && (c.DataAtom == atom.Script || c.DataAtom == atom.Style || c.DataAtom == atom.Head || c.DataAtom == atom.Title):
			default:
				walk(c)
			}
		}
	}
	walk(root)
	return found
}

// hasTextAfter reports visible text after start's subtree that is not
// itself inside a quote: the sign of an interleaved reply.
func hasTextAfter(root, start *html.Node) bool {
	for n := start; n != nil && n != root; n = n.Parent {
		for s := n.NextSibling; s != nil; s = s.NextSibling {
			if unquotedText(s) {
				return true
			}
		}
	}
	return false
}

func unquotedText(n *html.Node) bool {
	switch {
	case n.Type == html.TextNode:
		return strings.TrimSpace(strings.ReplaceAll(n.Data, "\u00a0", " ")) != ""
	case n.Type != html.ElementNode:
		return false
	case n.DataAtom == atom.Blockquote, n.DataAtom == atom.Script, n.DataAtom == atom.Style, classifyNode(n) != notQuote:
		return false
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if unquotedText(c) {
			return true
		}
	}
	return false
}

// detachFrom removes start, its following siblings and the following
// siblings of each of its ancestors up to root, and returns them in
// document order.
func detachFrom(root, start *html.Node) []*html.Node {
	var out []*html.Node
	n, first := start, start
	for n != root && n.Parent != nil {
		parent := n.Parent
		for s := first; s != nil; {
			next := s.NextSibling
			parent.RemoveChild(s)
			out = append(out, s)
			s = next
		}
		n, first = parent, parent.NextSibling
	}
	return out
}
