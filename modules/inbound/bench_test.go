package inbound

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// typicalMessage builds a ≈30 KB reply as Outlook and Gmail send it:
// multipart/alternative, a quoted-printable text part and a larger HTML
// part, both carrying a few rounds of quoted history.
func typicalMessage() []byte {
	var text, htmlPart strings.Builder
	text.WriteString("Hello Jane,\n\nthe export still fails for the March report; the log is below.\n\nRegards\nHans Müller\n\n")
	htmlPart.WriteString(`<html><head><style>p.MsoNormal{margin:0cm;font-family:"Calibri",sans-serif}</style></head><body><div class="WordSection1"><p class="MsoNormal">Hello Jane,</p><p class="MsoNormal">the export still fails for the March report; the log is below.</p><p class="MsoNormal">Regards<br>Hans Müller</p>`)
	for round := range 3 {
		text.WriteString("________________________________\nFrom: Acme Support <support@acme.example>\nSent: Tuesday, March 12, 2024 9:14 AM\nTo: Hans Müller <hans@example.de>\nSubject: [#7] Export\n\n")
		htmlPart.WriteString(`<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> Acme Support &lt;support@acme.example&gt;<br><b>Sent:</b> Tuesday, March 12, 2024 9:14 AM<br><b>To:</b> Hans Müller<br><b>Subject:</b> [#7] Export</p></div>`)
		for line := range 25 {
			s := fmt.Sprintf("Round %d, line %d: the export job timed out after 30 s while reading the ledger – please check “quota” settings.", round, line)
			text.WriteString(s + "\n")
			htmlPart.WriteString(`<p class="MsoNormal"><span style="font-size:11.0pt">` + s + `</span></p>`)
		}
	}
	htmlPart.WriteString(`</div></body></html>`)
	var b bytes.Buffer
	b.WriteString("From: =?utf-8?q?Hans_M=C3=BCller?= <hans@example.de>\r\nTo: Acme Support <support@acme.inbound.patchdesk.local>\r\n" +
		"Subject: RE: [#7] Export\r\nDate: Tue, 12 Mar 2024 09:47:11 +0000\r\nMessage-ID: <AM0PR07MB4131@example.de>\r\n" +
		"In-Reply-To: <a@acme.patchdesk.local>\r\nReferences: <a@acme.patchdesk.local>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"_000_alt_\"\r\n\r\n")
	part := func(ct, body string) {
		b.WriteString("--_000_alt_\r\nContent-Type: " + ct + "; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		w := quotedprintable.NewWriter(&b)
		_, _ = w.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
		_ = w.Close()
		b.WriteString("\r\n")
	}
	part("text/plain", text.String())
	part("text/html", htmlPart.String())
	b.WriteString("--_000_alt_--\r\n")
	return b.Bytes()
}

// largeMessage builds a ≈5 MB message: a short text and a 3.7 MB PDF, base64.
func largeMessage() []byte {
	pdf := make([]byte, 3_700_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pdf {
		pdf[i] = byte(r.Uint32())
	}
	copy(pdf, "%PDF-1.7\n")
	var b bytes.Buffer
	b.WriteString("From: jane@example.com\r\nTo: acme@inbound.patchdesk.local\r\nSubject: Scan\r\nMessage-ID: <scan-1@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scan is attached.\r\n" +
		"--b\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(pdf)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b--\r\n")
	return b.Bytes()
}

func TestBenchmarkMessages(t *testing.T) {
	t.Parallel()
	if n := len(typicalMessage()); n < 25<<10 || n > 35<<10 {
		t.Errorf("the typical message is %d bytes, not about 30 KB", n)
	}
	if n := len(largeMessage()); n < 4_700_000 || n > 5_500_000 {
		t.Errorf("the large message is %d bytes, not about 5 MB", n)
	}
	m, err := Parse(typicalMessage())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.New.Text, "the log is below") || strings.Contains(m.New.Text, "Round 0") || !strings.Contains(m.Quoted.HTML, "Round 2, line 24") {
		t.Errorf("typical message not cut as expected:\n%s", m.New.Text)
	}
	m, err = Parse(largeMessage())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Size() != 3_700_000 || !bytes.HasPrefix(m.Attachments[0].Content, []byte("%PDF-1.7")) {
		t.Errorf("large message attachments = %d", len(m.Attachments))
	}
}

func benchmarkParse(b *testing.B, raw []byte) {
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkParseTypical30KB: a reply with HTML and history, all of Parse
// (MIME, charsets, sanitising, cutting).
func BenchmarkParseTypical30KB(b *testing.B) { benchmarkParse(b, typicalMessage()) }

// BenchmarkParse5MBAttachment: a message carrying a 3.7 MB PDF (5 MB base64).
func BenchmarkParse5MBAttachment(b *testing.B) { benchmarkParse(b, largeMessage()) }
