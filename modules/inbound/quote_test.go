package inbound

import (
	"strings"
	"testing"
)

func TestSplitText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		text          string
		fresh, quoted string // quoted "" means nothing cut
	}{
		{
			name:   "gmail wrapped attribution",
			text:   "Thanks, works now.\n\nOn Tue, Mar 12, 2024 at 9:14 AM Jane Doe <\njane@acme.example> wrote:\n\n> Please try again.\n>\n",
			fresh:  "Thanks, works now.",
			quoted: "On Tue, Mar 12, 2024 at 9:14 AM Jane Doe <\njane@acme.example> wrote:\n\n> Please try again.\n>",
		},
		{
			name:   "gmail attribution wrapped before wrote",
			text:   "Yes.\n\nOn Tue, Mar 12, 2024 at 9:14 AM Jane Doe via Acme Support <support@acme.example>\nwrote:\n\n> Is it fixed?\n",
			fresh:  "Yes.",
			quoted: "On Tue, Mar 12, 2024 at 9:14 AM Jane Doe via Acme Support <support@acme.example>\nwrote:\n\n> Is it fixed?",
		},
		{
			name:   "apple mail",
			text:   "Screenshot attached.\n\nSent from my iPhone\n\n> On 12. Mar 2024, at 09:14, Jane Doe <jane@acme.example> wrote:\n> \n> Could you send a screenshot?\n",
			fresh:  "Screenshot attached.\n\nSent from my iPhone",
			quoted: "> On 12. Mar 2024, at 09:14, Jane Doe <jane@acme.example> wrote:\n> \n> Could you send a screenshot?",
		},
		{
			name:   "thunderbird german with signature",
			text:   "Danke!\n\n-- \nKlaus Becker\nBecker GmbH\n\nAm 12.03.24 um 09:14 schrieb Jane Doe:\n> Bitte Cache leeren.\n",
			fresh:  "Danke!\n\n-- \nKlaus Becker\nBecker GmbH",
			quoted: "Am 12.03.24 um 09:14 schrieb Jane Doe:\n> Bitte Cache leeren.",
		},
		{
			name:   "gmail german",
			text:   "Passt.\n\nAm Di., 12. März 2024 um 09:14 Uhr schrieb Jane Doe <jane@acme.example>:\n\n> Passt es jetzt?\n",
			fresh:  "Passt.",
			quoted: "Am Di., 12. März 2024 um 09:14 Uhr schrieb Jane Doe <jane@acme.example>:\n\n> Passt es jetzt?",
		},
		{
			name:   "french with narrow space before colon",
			text:   "Merci.\n\nLe mar. 12 mars 2024 à 09:14, Jane Doe <jane@acme.example> a écrit\u00a0:\n> Ça marche ?\n",
			fresh:  "Merci.",
			quoted: "Le mar. 12 mars 2024 à 09:14, Jane Doe <jane@acme.example> a écrit\u00a0:\n> Ça marche ?",
		},
		{
			name:   "spanish",
			text:   "Gracias.\n\nEl mar, 12 mar 2024 a las 9:14, Jane Doe (<jane@acme.example>) escribió:\n> ¿Funciona?\n",
			fresh:  "Gracias.",
			quoted: "El mar, 12 mar 2024 a las 9:14, Jane Doe (<jane@acme.example>) escribió:\n> ¿Funciona?",
		},
		{
			name:   "outlook with rule",
			text:   "Still broken.\n\nRegards\nHans\n\n________________________________\nFrom: Acme Support <support@acme.example>\nSent: Tuesday, March 12, 2024 9:14 AM\nTo: Hans <hans@example.de>\nSubject: [#7] Printer\n\nPlease restart it.\n",
			fresh:  "Still broken.\n\nRegards\nHans",
			quoted: "________________________________\nFrom: Acme Support <support@acme.example>\nSent: Tuesday, March 12, 2024 9:14 AM\nTo: Hans <hans@example.de>\nSubject: [#7] Printer\n\nPlease restart it.",
		},
		{
			name:   "outlook german, bold labels from an HTML rendering",
			text:   "Geht wieder.\n\n*Von:* Acme Support <support@acme.example>\n*Gesendet:* Dienstag, 12. März 2024 09:14\n*An:* Hans <hans@example.de>\n*Betreff:* Drucker\n\nBitte neu starten.\n",
			fresh:  "Geht wieder.",
			quoted: "*Von:* Acme Support <support@acme.example>\n*Gesendet:* Dienstag, 12. März 2024 09:14\n*An:* Hans <hans@example.de>\n*Betreff:* Drucker\n\nBitte neu starten.",
		},
		{
			name:   "outlook french",
			text:   "Toujours en panne.\n\nDe : Acme Support <support@acme.example>\nEnvoyé : mardi 12 mars 2024 09:14\nÀ : Marie <marie@exemple.fr>\nObjet : Imprimante\n\nRedémarrez-la.\n",
			fresh:  "Toujours en panne.",
			quoted: "De : Acme Support <support@acme.example>\nEnvoyé : mardi 12 mars 2024 09:14\nÀ : Marie <marie@exemple.fr>\nObjet : Imprimante\n\nRedémarrez-la.",
		},
		{
			name:   "outlook spanish",
			text:   "Sigue igual.\n\nDe: Acme Support <support@acme.example>\nEnviado el: martes, 12 de marzo de 2024 9:14\nPara: Iñigo <inigo@ejemplo.es>\nAsunto: Impresora\n\nReinicie.\n",
			fresh:  "Sigue igual.",
			quoted: "De: Acme Support <support@acme.example>\nEnviado el: martes, 12 de marzo de 2024 9:14\nPara: Iñigo <inigo@ejemplo.es>\nAsunto: Impresora\n\nReinicie.",
		},
		{
			name:   "original message separator",
			text:   "See below.\n\n-----Original Message-----\nFrom: Jane\nSent: Monday\nSubject: x\n\nold text\n",
			fresh:  "See below.",
			quoted: "-----Original Message-----\nFrom: Jane\nSent: Monday\nSubject: x\n\nold text",
		},
		{
			name:   "german original message separator",
			text:   "Siehe unten.\n-----Ursprüngliche Nachricht-----\nalter Text\n",
			fresh:  "Siehe unten.",
			quoted: "-----Ursprüngliche Nachricht-----\nalter Text",
		},
		{
			name:   "outlook for mac: attribution over an unmarked copy",
			text:   "Done.\n\nOn 12/03/2024, 09:14, \"Jane Doe\" <jane@acme.example> wrote:\n\n    Please confirm.\n",
			fresh:  "Done.",
			quoted: "On 12/03/2024, 09:14, \"Jane Doe\" <jane@acme.example> wrote:\n\n    Please confirm.",
		},
		{
			name:   "bare quote block at the end",
			text:   "Agreed.\n\n> the original\n> text\n",
			fresh:  "Agreed.",
			quoted: "> the original\n> text",
		},
		{
			name:   "bare name wrote above quotes",
			text:   "Fine by me.\n\nJane Doe wrote:\n> Shall we?\n",
			fresh:  "Fine by me.",
			quoted: "Jane Doe wrote:\n> Shall we?",
		},
		{
			name:  "bare wrote without quotes is text",
			text:  "My colleague wrote:\nthe server is down again.\n",
			fresh: "My colleague wrote:\nthe server is down again.",
		},
		{
			name:  "interleaved reply is not cut",
			text:  "On Tue, Jane wrote:\n> Version?\n4.2\n> OS?\nLinux\n",
			fresh: "On Tue, Jane wrote:\n> Version?\n4.2\n> OS?\nLinux",
		},
		{
			name:  "bottom-posted reply is not cut",
			text:  "> Is it fixed?\n\nYes, thanks.\n",
			fresh: "> Is it fixed?\n\nYes, thanks.",
		},
		{
			name:  "only a quote keeps everything",
			text:  "On Tue, Mar 12, 2024 at 9:14 AM Jane wrote:\n> hello\n",
			fresh: "On Tue, Mar 12, 2024 at 9:14 AM Jane wrote:\n> hello",
		},
		{
			name:  "signature alone is left alone",
			text:  "Thanks\n\n-- \nJane\n+49 89 1234\n",
			fresh: "Thanks\n\n-- \nJane\n+49 89 1234",
		},
		{
			name:  "a sentence starting with on is not an attribution",
			text:  "On Monday the export failed twice.\nIt wrote: nothing.\n",
			fresh: "On Monday the export failed twice.\nIt wrote: nothing.",
		},
		{
			name:  "an undated on-wrote sentence over text is text",
			text:  "Hi,\nOn the ticket you wrote:\nthe server is down.\nIt still is.\n",
			fresh: "Hi,\nOn the ticket you wrote:\nthe server is down.\nIt still is.",
		},
		{
			name:  "a from line alone is text",
			text:  "From: my manager\nPlease escalate.\n",
			fresh: "From: my manager\nPlease escalate.",
		},
		{
			name:   "crlf and invalid utf-8 are cleaned",
			text:   "ok \xff\r\n\r\n> old\r\n",
			fresh:  "ok \ufffd",
			quoted: "> old",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fresh, quoted := SplitText(tt.text)
			if fresh != tt.fresh || quoted != tt.quoted {
				t.Errorf("SplitText:\nfresh  %q\nwant   %q\nquoted %q\nwant   %q", fresh, tt.fresh, quoted, tt.quoted)
			}
		})
	}
}

func TestSplitHTML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		html         string
		fresh        []string // substrings of the new part
		quoted       []string // substrings of the quoted part; nil means nothing cut
		notFreshText []string
	}{
		{
			name:         "gmail",
			html:         `<div dir="ltr">Works now, thanks!</div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">On Tue, Mar 12, 2024 at 9:14 AM Jane &lt;jane@acme.example&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0 0 0 .8ex">Try again?</blockquote></div>`,
			fresh:        []string{"Works now, thanks!"},
			quoted:       []string{"wrote:", "Try again?"},
			notFreshText: []string{"Try again?", "wrote:"},
		},
		{
			name:   "old gmail",
			html:   `<div>ok</div><div class="gmail_extra"><br><div class="gmail_quote">On Mon, Jane wrote:<blockquote class="gmail_quote">old</blockquote></div></div>`,
			fresh:  []string{"ok"},
			quoted: []string{"old"},
		},
		{
			name:   "apple mail",
			html:   `<html><body dir="auto"><div dir="ltr">Screenshot attached.</div><div dir="ltr"><br><blockquote type="cite">On 12 Mar 2024, at 09:14, Jane wrote:<br><br></blockquote></div><blockquote type="cite"><div dir="ltr">Could you send one?</div></blockquote></body></html>`,
			fresh:  []string{"Screenshot attached."},
			quoted: []string{"Jane wrote:", "Could you send one?"},
		},
		{
			name:   "thunderbird",
			html:   `<p>Danke!</p><div class="moz-signature">-- <br>Klaus</div><div class="moz-cite-prefix">Am 12.03.24 um 09:14 schrieb Jane:<br></div><blockquote type="cite" cite="mid:x@y">Cache leeren.</blockquote>`,
			fresh:  []string{"Danke!", "Klaus"},
			quoted: []string{"schrieb Jane:", "Cache leeren."},
		},
		{
			name:   "outlook on the web",
			html:   `<div>VPN drops.</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Acme<br><b>Sent:</b> Monday<br><b>To:</b> Priya<br><b>Subject:</b> VPN</div><div>Does it still happen?</div>`,
			fresh:  []string{"VPN drops."},
			quoted: []string{"<hr/>", "<b>Sent:</b>", "Does it still happen?"},
		},
		{
			name:   "outlook desktop",
			html:   `<div class="WordSection1"><p class="MsoNormal">Still broken.</p><div><div style="border:none;border-top:solid #E1E1E1 1.0pt"><p class="MsoNormal"><b>From:</b> Acme Support<br><b>Sent:</b> Tuesday, March 12, 2024 9:14 AM<br><b>To:</b> Hans<br><b>Subject:</b> Printer</p></div></div><p class="MsoNormal">Please restart it.</p></div>`,
			fresh:  []string{"Still broken."},
			quoted: []string{"<b>From:</b>", "Please restart it."},
		},
		{
			name:   "outlook desktop german",
			html:   `<p>Geht wieder.</p><div style="border-top:solid #E1E1E1 1.0pt"><p><b>Von:</b> Acme<br><b>Gesendet:</b> Dienstag<br><b>An:</b> Hans<br><b>Betreff:</b> Drucker</p></div><p>Bitte neu starten.</p>`,
			fresh:  []string{"Geht wieder."},
			quoted: []string{"Gesendet:", "Bitte neu starten."},
		},
		{
			name: "original message in the middle of a text block",
			html: `<pre>See below.
-----Original Message-----
From: Jane
old text</pre>`,
			fresh:  []string{"See below."},
			quoted: []string{"-----Original Message-----", "old text"},
		},
		{
			name:   "yahoo",
			html:   `<div>Thanks</div><div class="yahoo_quoted"><div>On Monday, Jane wrote:</div><div>old</div></div>`,
			fresh:  []string{"Thanks"},
			quoted: []string{"old"},
		},
		{
			name:  "interleaved blockquotes are not cut",
			html:  `<div class="moz-cite-prefix">On Tue, Jane wrote:</div><blockquote type="cite">Version?</blockquote>4.2<blockquote type="cite">OS?</blockquote>Linux`,
			fresh: []string{"Version?", "4.2", "Linux"},
		},
		{
			name:  "only a quote keeps everything",
			html:  `<div class="gmail_quote">On Tue, Jane wrote:<blockquote>hello</blockquote></div>`,
			fresh: []string{"hello"},
		},
		{
			name:  "no quote",
			html:  `<p>Just a question.</p>`,
			fresh: []string{"Just a question."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := readHTML(tt.html, true)
			for _, s := range tt.fresh {
				if !strings.Contains(b.fresh.HTML, s) {
					t.Errorf("fresh HTML lacks %q:\n%s", s, b.fresh.HTML)
				}
			}
			for _, s := range tt.notFreshText {
				if strings.Contains(b.fresh.Text, s) {
					t.Errorf("fresh text holds %q:\n%s", s, b.fresh.Text)
				}
			}
			if tt.quoted == nil && b.quoted != (Body{}) {
				t.Errorf("cut, want nothing cut: quoted %q", b.quoted.HTML)
			}
			for _, s := range tt.quoted {
				if !strings.Contains(b.quoted.HTML, s) {
					t.Errorf("quoted HTML lacks %q:\n%s", s, b.quoted.HTML)
				}
				if strings.Contains(b.fresh.HTML, s) {
					t.Errorf("fresh HTML still holds %q:\n%s", s, b.fresh.HTML)
				}
			}
			fresh, quoted := SplitHTML(tt.html)
			if fresh != b.fresh.HTML || quoted != b.quoted.HTML {
				t.Errorf("SplitHTML differs from readHTML")
			}
		})
	}
}

// TestSplitKeepsForwards: a forwarded message's quote is its content.
func TestSplitKeepsForwards(t *testing.T) {
	t.Parallel()
	m := parseSample(t, "forward_gmail.eml")
	if m.Quoted != (Body{}) || m.New != m.Body {
		t.Errorf("forward was cut: %+v", m.Quoted)
	}
	for _, subject := range []string{"Fwd: x", "FW: x", "WG: x", "TR: x", "RV: x", "[#4] Fwd: x"} {
		if !forwardSubject.MatchString(subject) {
			t.Errorf("%q not seen as a forward", subject)
		}
	}
	for _, subject := range []string{"Re: Fwd: x", "Forward planning", "Re: x"} {
		if forwardSubject.MatchString(subject) {
			t.Errorf("%q seen as a forward", subject)
		}
	}
}

// TestSplitLinear feeds the cutters shapes that would be quadratic if a
// check walked its whole subtree or tail from every node or line. It fails
// by timing out (go test -timeout), not by measuring time.
func TestSplitLinear(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("<div>", 50000) + "text" + strings.Repeat("</div>", 50000)
	if fresh, _ := SplitHTML(deep); !strings.Contains(fresh, "text") {
		t.Error("deeply nested text lost")
	}
	many := strings.Repeat("On Monday, Jane wrote:\nreply\n", 50000) + "\n> q\n"
	if fresh, _ := SplitText(many); !strings.HasPrefix(fresh, "On Monday") {
		t.Error("text lost")
	}
	long := strings.Repeat("On a b c\n"+strings.Repeat("x", 100000)+"\n", 100)
	if fresh, _ := SplitText(long); len(fresh) < 100*100000 {
		t.Error("long lines lost")
	}
}
