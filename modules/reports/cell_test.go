package reports

import "testing"

func TestCellNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", ""},
		{"Plain", "Plain"},
		{"a=b", "a=b"},
		{"mail@example.com", "mail@example.com"},
		{"=1+1", "'=1+1"},
		{"+1 call me", "'+1 call me"},
		{"-2", "'-2"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{";cmd", "';cmd"},
		{"\t=1", "'\t=1"},
		{"\tplain", "'\tplain"},
		{"\r=1", "'\r=1"},
		{"\rplain", "'\rplain"},
		{"＝HYPERLINK(\"x\")", "'＝HYPERLINK(\"x\")"},
		{"＋1", "'＋1"},
		{"－1", "'－1"},
		{"＠SUM(A1)", "'＠SUM(A1)"},
		{"；x", "'；x"},
		{" =1", "' =1"},
		{"   @x", "'   @x"},
		{"\n=1", "'\n=1"},
		{"\u00a0=1", "'\u00a0=1"},
		{"\u3000＝1", "'\u3000＝1"},
		{"\u200b=1", "'\u200b=1"},
		{"\u200c\u200d+1", "'\u200c\u200d+1"},
		{"\u2060-1", "'\u2060-1"},
		{"\ufeff@x", "'\ufeff@x"},
		{"\u200e=1", "'\u200e=1"},
		{"\u00ad=1", "'\u00ad=1"},
		{"\u200b \u200b;x", "'\u200b \u200b;x"},
		{"\u200bplain", "\u200bplain"},
		{"  plain =1", "  plain =1"},
		{"'=already quoted", "'=already quoted"},
	}
	for _, tc := range cases {
		if got := cell(tc.in); got != tc.want {
			t.Errorf("cell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
