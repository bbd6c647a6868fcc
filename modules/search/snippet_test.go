package search

import (
	"strings"
	"testing"
)

func TestSnippetHTMLEscapesEverythingButTheMarks(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{"plain", "a \uE000fire\uE001 b", "a <mark>fire</mark> b"},
		{"script", "\uE000fire\uE001 <script>alert(1)</script>", "<mark>fire</mark> &lt;script&gt;alert(1)&lt;/script&gt;"},
		{"img onerror", `<img src=x onerror=alert(1)> ` + "\uE000fire\uE001", "&lt;img src=x onerror=alert(1)&gt; <mark>fire</mark>"},
		{"attribute breakers", `x" onmouseover="a' b` + "\uE000fire\uE001", "x&#34; onmouseover=&#34;a&#39; b<mark>fire</mark>"},
		{"entities stay text", "&lt;b&gt; &amp;", "&amp;lt;b&amp;gt; &amp;amp;"},
		{"unbalanced stop ignored", "\uE001a \uE000b", "a <mark>b</mark>"},
		{"nested start ignored", "\uE000a \uE000b\uE001\uE001", "<mark>a b</mark>"},
		{"no marks", "nothing", "nothing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := snippetHTML(tc.in); got != tc.want {
				t.Fatalf("snippetHTML(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestStripSentinels(t *testing.T) {
	t.Parallel()
	if got := stripSentinels("a\uE000b\uE001c\uE002"); got != "abc\uE002" {
		t.Fatalf("got %q", got)
	}
}

func TestTrimRunesCountCharactersLikePostgres(t *testing.T) {
	t.Parallel()
	s := "aé🙂z字"
	cases := []struct {
		n          int
		head, tail string
	}{
		{0, "", ""}, {1, "a", "字"}, {2, "aé", "z字"}, {3, "aé🙂", "🙂z字"}, {5, s, s}, {9, s, s},
	}
	for _, tc := range cases {
		if h, tl := headRunes(s, tc.n), tailRunes(s, tc.n); h != tc.head || tl != tc.tail {
			t.Errorf("n=%d: head %q tail %q, want %q %q", tc.n, h, tl, tc.head, tc.tail)
		}
	}
	if strings.Repeat("x", 3) != headRunes(strings.Repeat("x", 10), 3) {
		t.Error("ascii head")
	}
}
