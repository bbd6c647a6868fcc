package inbound

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestSanitizeHTML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []string // substrings that must remain
		notWant []string // substrings that must be gone (case-insensitive)
	}{
		{"script", `<p>hi</p><script>alert(1)</script>`, []string{"<p>hi</p>"}, []string{"script", "alert"}},
		{"style element and attribute", `<style>p{color:red}</style><p style="position:fixed;top:0">x</p>`, []string{"<p>x</p>"}, []string{"style", "color", "fixed"}},
		{"event handlers", `<div onclick="x()" onmouseover="y()">a</div><img src="cid:a" onerror="z()">`, []string{"<div>a</div>", `src="cid:a"`}, []string{"onclick", "onmouseover", "onerror"}},
		{"javascript links", `<a href="javascript:alert(1)">a</a><a href="JaVaScRiPt:alert(1)">b</a><a href="&#106;avascript:alert(1)">c</a><a href=" javascript:alert(1)">d</a>`, []string{"a", "b", "c", "d"}, []string{"javascript", "href"}},
		{"other schemes", `<a href="vbscript:x">a</a><a href="data:text/html;base64,PHNjcmlwdD4=">b</a><a href="file:///etc/passwd">c</a>`, nil, []string{"vbscript", "data:text", "file:", "href"}},
		{"relative urls", `<a href="/t/acme/api/v1/members">a</a><a href="#top">b</a>`, nil, []string{"href"}},
		{"safe links", `<a href="https://example.com/x?a=1&amp;b=2">a</a><a href="mailto:jane@example.com">m</a>`, []string{`href="https://example.com/x?a=1&amp;b=2"`, `rel="nofollow noreferrer noopener"`, `target="_blank"`, `href="mailto:jane@example.com"`}, nil},
		{"class and id", `<p class="btn-danger hidden" id="login-form">x</p>`, []string{"<p>x</p>"}, []string{"class", "id="}},
		{"remote image", `<img src="https://tracker.example/p.gif"><img src="//cdn.example/a.png">`, nil, []string{"img", "tracker", "cdn"}},
		{"inline images", `<img src="cid:logo@x" alt="logo" width="20"><img src="data:image/png;base64,iVBORw0KGgo=">`, []string{`src="cid:logo@x"`, `alt="logo"`, `width="20"`, `src="data:image/png;base64,iVBORw0KGgo="`}, nil},
		{"svg data image", `<img src="data:image/svg+xml;base64,PHN2Zz48c2NyaXB0PmFsZXJ0KDEpPC9zY3JpcHQ+PC9zdmc+">`, nil, nil},
		{"frames forms objects", `<iframe src="https://e.example"></iframe><form action="/x"><input name="p"><button>go</button></form><object data="x"></object><embed src="x">`, nil, []string{"iframe", "form", "input", "object", "embed", "button"}},
		{"meta base link", `<meta http-equiv="refresh" content="0;url=https://e.example"><base href="https://e.example/"><link rel="stylesheet" href="https://e.example/a.css">`, nil, []string{"meta", "refresh", "base", "link", "stylesheet"}},
		{"svg", `<svg onload="alert(1)"><a xlink:href="javascript:x"><circle r="5"/></a></svg>`, nil, []string{"svg", "onload", "javascript"}},
		{"structure kept", `<h2>T</h2><ul><li>a</li></ul><table><tr><td>1</td></tr></table><blockquote>q</blockquote><pre>code</pre>`, []string{"<h2>T</h2>", "<li>a</li>", "<td>1</td>", "<blockquote>q</blockquote>", "<pre>code</pre>"}, nil},
		{"nul and invalid utf-8", "<p>a\x00b \xff</p>", []string{"<p>ab \ufffd</p>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := SanitizeHTML(tt.in)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("SanitizeHTML(%q) = %q, lacks %q", tt.in, got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(strings.ToLower(got), strings.ToLower(w)) {
					t.Errorf("SanitizeHTML(%q) = %q, still holds %q", tt.in, got, w)
				}
			}
			if tt.name == "svg data image" && strings.Contains(got, "svg") {
				t.Errorf("an SVG data image (it can carry script) survived: %q", got)
			}
		})
	}
}

func TestRemoteImagesBecomeText(t *testing.T) {
	t.Parallel()
	b := readHTML(`<p>Logo: <img src="https://cdn.example/logo.png" alt="ACME logo"> and <img src="https://t.example/p.gif" width="1" height="1"></p><img src="cid:x">`, false)
	if b.remoteImages != 2 {
		t.Errorf("remoteImages = %d, want 2", b.remoteImages)
	}
	if !strings.Contains(b.body.HTML, "Logo: [ACME logo] and") || strings.Contains(b.body.HTML, "example") || !strings.Contains(b.body.HTML, `src="cid:x"`) {
		t.Errorf("HTML = %q", b.body.HTML)
	}
	if !strings.Contains(b.body.Text, "Logo: [ACME logo] and") {
		t.Errorf("Text = %q", b.body.Text)
	}
}

func TestHTMLText(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, html, want string }{
		{"paragraphs and breaks", "<p>One\n   two</p><p>three<br>four</p>", "One two\n\nthree\nfour"},
		{"divs", "<div>a</div><div>b</div><div><div>c</div></div>", "a\nb\nc"},
		{"inline spacing", "<p>Please <b>help</b>, <i>now</i> .</p>", "Please help, now ."},
		{"lists", "<ul><li>one</li><li>two</li></ul><p>after</p>", "* one\n* two\n\nafter"},
		{"quote", "<p>new</p><blockquote><p>old</p><p>older</p></blockquote>", "new\n\n> old\n>\n> older"},
		{"nested quote", "<blockquote>a<blockquote>b</blockquote></blockquote>", "> a\n>\n>> b"},
		{"pre keeps lines", "<pre>line 1\n  line 2</pre>", "line 1\n  line 2"},
		{"table", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d"},
		{"links", `<a href="https://x.example/a">docs</a> <a href="mailto:j@x.example">j@x.example</a> <a href="javascript:x()">bad</a> <a href="/rel">rel</a> <a href="https://x.example">https://x.example</a>`, "docs (https://x.example/a) j@x.example bad rel https://x.example"},
		{"images", `<img src="cid:a" alt="chart"><img src="cid:b">`, "[chart]"},
		{"skipped content", "<head><title>T</title><style>p{}</style></head><body><script>x()</script><p>shown</p><noscript>n</noscript><iframe>f</iframe></body>", "shown"},
		{"entities and nbsp", "<p>a&amp;b&nbsp;c &lt;tag&gt;</p>", "a&b c <tag>"},
	}
	for _, tt := range tests {
		doc, err := html.Parse(strings.NewReader(tt.html))
		if err != nil {
			t.Fatal(err)
		}
		if got := htmlText(doc); got != tt.want {
			t.Errorf("%s: htmlText = %q, want %q", tt.name, got, tt.want)
		}
	}
}
