package inbound

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"mime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// TestParseSamples reads each message of the corpus and checks what the
// pipeline will rely on.
func TestParseSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file        string
		messageID   string
		from        Address
		subject     string
		newText     []string // substrings of New.Text
		notNewText  []string // must have been cut (or never there)
		quotedText  []string // substrings of Quoted.Text
		newHTML     []string
		quotedHTML  []string
		attachments []string
		warnings    []string // warning kinds expected (in any order, at least these)
		kind        Kind
	}{
		{
			file:       "gmail_reply.eml",
			messageID:  "CAF=+zq2Xy7uN0n3LbQp5_r8Jk=Vd1N2mWn6QH4iT7c@mail.gmail.com",
			from:       Address{Name: "Tom Customer", Address: "tom.customer@gmail.com"},
			subject:    "Re: [#42] Export fails with a timeout",
			newText:    []string{"Hi Jane,", "dates in US format", "Tom"},
			notNewText: []string{"wrote:", "deployed a fix"},
			quotedText: []string{"On Tue, Mar 12, 2024 at 9:14 AM Jane Doe", "> we deployed a fix"},
			newHTML:    []string{"dates in US format"},
			quotedHTML: []string{"we deployed a fix", "<blockquote>"},
			kind:       KindRegular,
		},
		{
			file:        "outlook_reply_cp1252.eml",
			from:        Address{Name: "Hans Müller", Address: "hans.mueller@example.de"},
			subject:     "AW: [#7] Printer jam – still “broken”",
			newText:     []string{"“paper jam”", "budget € 250", "Müller"},
			notNewText:  []string{"________", "Sent:", "switch the printer off"},
			quotedText:  []string{"________________________________\nFrom: Acme Support", "switch the printer off"},
			newHTML:     []string{"“paper jam”"},
			quotedHTML:  []string{"<b>From:</b>", "switch the printer off"},
			kind:        KindRegular,
			attachments: nil,
		},
		{
			file:       "outlook_web_html_only.eml",
			subject:    "Re: [#99] VPN",
			newText:    []string{"Good morning,", "Log attached.", "Priya"},
			notNewText: []string{"From:", "does it still happen"},
			quotedText: []string{"Sent:", "does it still happen"},
			newHTML:    []string{"Good morning,"},
			quotedHTML: []string{"<hr/>", "does it still happen"},
			kind:       KindRegular,
		},
		{
			file:        "apple_mail_inline_image.eml",
			from:        Address{Name: "Lena Vogel", Address: "lena@vogel.example"},
			newText:     []string{"Here is a screenshot", "Sent from my iPhone"},
			notNewText:  []string{"wrote:", "Could you send"},
			quotedText:  []string{"> Could you send us a screenshot?"},
			newHTML:     []string{`<img src="cid:A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF" alt="IMG_0042.png"/>`, "Sent from my iPhone"},
			quotedHTML:  []string{"Could you send us a screenshot?"},
			attachments: []string{"IMG_0042.png"},
			kind:        KindRegular,
		},
		{
			file:       "thunderbird_reply_de.eml",
			subject:    "Re: [#21] Anmeldung schlägt fehl",
			newText:    []string{"danke, das hat funktioniert.", "Viele Grüße", "-- \nKlaus Becker · Becker GmbH"},
			notNewText: []string{"schrieb", "Browser-Cache"},
			quotedText: []string{"Am 12.03.24 um 09:14 schrieb Jane Doe:", "> bitte leeren Sie den Browser-Cache."},
			newHTML:    []string{"Klaus Becker · Becker GmbH"},
			quotedHTML: []string{"schrieb Jane Doe:", "Browser-Cache"},
			kind:       KindRegular,
		},
		{
			file:       "reply_fr_latin1.eml",
			from:       Address{Name: "Élodie Martin", Address: "elodie.martin@exemple.fr"},
			subject:    "Re\u00a0: [#5] Problème de synchronisation",
			newText:    []string{"Le problème persiste après la mise à jour.", "Élodie"},
			notNewText: []string{"a écrit", "disponible"},
			quotedText: []string{"Jane Doe <jane@acme.example> a écrit :", "> la mise à jour est disponible."},
			kind:       KindRegular,
		},
		{
			file:       "reply_es_latin9.eml",
			from:       Address{Name: "Iñigo García", Address: "inigo@ejemplo.es"},
			subject:    "Re: [#6] Facturación",
			newText:    []string{"El coste fue de 30 €.", "Iñigo"},
			notNewText: []string{"escribió"},
			quotedText: []string{"escribió:", "> ¿puede probar otra vez?"},
			kind:       KindRegular,
		},
		{
			file:    "interleaved_reply.eml",
			newText: []string{"> Which version do you run?\nVersion 4.2.1.", "Only on the first one each day."},
			kind:    KindRegular,
		},
		{
			file:    "windows1252.eml",
			subject: "Invoice € amount – wrong",
			newText: []string{"The invoice says € 1.250 – it should be € 1.150. “Thanks”, Sam"},
			kind:    KindRegular,
		},
		{
			file:    "iso2022jp.eml",
			from:    Address{Name: "山田太郎", Address: "yamada@example.jp"},
			subject: "ログインできません",
			newText: []string{"お世話になっております。\nログインできません。"},
			kind:    KindRegular,
		},
		{
			file:    "gb2312.eml",
			from:    Address{Name: "李明", Address: "liming@example.cn"},
			subject: "账户无法登录",
			newText: []string{"我们的账户无法登录，请帮忙处理。"},
			kind:    KindRegular,
		},
		{
			file:    "iso8859_2.eml",
			from:    Address{Name: "Paweł Kowalski", Address: "pawel@example.pl"},
			subject: "Zgłoszenie błędu",
			newText: []string{"Dzień dobry,\nżółć"},
			kind:    KindRegular,
		},
		{
			file:       "html_only_hostile.eml",
			newText:    []string{"Please help, click or docs (https://example.com/docs?a=1&b=2) or relative.", "Order number: 12345", "[Company logo]"},
			notNewText: []string{"javascript", "alert", "Secret title", "background", "/t/acme/api"},
			newHTML:    []string{"<b>help</b>", `href="https://example.com/docs?a=1&amp;b=2"`, `<img src="cid:logo@inline" alt="inline logo"/>`},
			warnings:   []string{WarnRemoteImages},
			kind:       KindRegular,
		},
		{
			file:        "attachments_rfc2231.eml",
			newText:     []string{"Voici les documents demandés."},
			attachments: []string{"été.pdf", "Résumé de la réunion du 12 mars.pdf", "Übersicht 2024.xlsx", "請求書.txt", "notes.txt", "attachment-6.eml"},
			kind:        KindRegular,
		},
		{
			file:        "inline_related.eml",
			newText:     []string{"See the diagram:", "Спасибо"},
			newHTML:     []string{`<img src="cid:diagram.png@01DA7456.12345670" alt="diagram"/>`},
			attachments: []string{"attachment-1.png"},
			kind:        KindRegular,
		},
		{file: "dsn_postfix.eml", kind: KindDeliveryStatus, attachments: []string{"attachment-1.txt", "attachment-2.eml"}},
		{file: "dsn_exchange_headers.eml", kind: KindDeliveryStatus},
		{file: "auto_reply_oof.eml", kind: KindAutoReply, newText: []string{"nicht im Büro"}},
		{file: "auto_reply_vacation.eml", kind: KindAutoReply},
		{file: "bulk_list.eml", kind: KindBulk},
		{file: "own_loop.eml", kind: KindLoop},
		{file: "mdn_read_receipt.eml", kind: KindAutoReply},
		{
			file:    "forward_gmail.eml",
			newText: []string{"FYI, this customer cannot log in.", "---------- Forwarded message", "> I cannot log in since Monday."},
			kind:    KindRegular,
		},
		{
			file:        "malformed_unclosed_boundary.eml",
			newText:     []string{"The body before a broken attachment."},
			attachments: []string{"cut.pdf"},
			warnings:    []string{"Missing Boundary"},
			kind:        KindRegular,
		},
		{
			file:     "malformed_wrong_boundary.eml",
			newText:  []string{"Text under an undeclared boundary."},
			warnings: []string{WarnStructure, WarnDate},
			kind:     KindRegular,
		},
		{
			file:     "malformed_no_boundary.eml",
			newText:  []string{"Body of a multipart without a boundary parameter."},
			warnings: []string{WarnStructure},
			kind:     KindRegular,
		},
		{
			file:        "invalid_utf8_nul.eml",
			subject:     "broken \ufffd\ufffd bytes",
			newText:     []string{"valid text, \ufffd( invalid, a NUL:: and  escape."},
			attachments: []string{"weird.txt", "broken.png"},
			warnings:    []string{WarnInvalidUTF8, "Character Set Conversion", "Malformed Base64"},
			kind:        KindRegular,
		},
		{file: "huge_headers.eml", subject: "huge headers", newText: []string{"small body"}, kind: KindRegular},
		{file: "no_message_id.eml", newText: []string{"Ünïcödé body without MIME headers."}, kind: KindRegular},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m := parseSample(t, tt.file)
			if tt.messageID != "" && m.MessageID != tt.messageID {
				t.Errorf("MessageID = %q, want %q", m.MessageID, tt.messageID)
			}
			if tt.from != (Address{}) && m.From != tt.from {
				t.Errorf("From = %+v, want %+v", m.From, tt.from)
			}
			if tt.subject != "" && m.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
			}
			contains(t, "New.Text", m.New.Text, tt.newText)
			contains(t, "Quoted.Text", m.Quoted.Text, tt.quotedText)
			contains(t, "New.HTML", m.New.HTML, tt.newHTML)
			contains(t, "Quoted.HTML", m.Quoted.HTML, tt.quotedHTML)
			for _, s := range tt.notNewText {
				if strings.Contains(m.New.Text, s) || strings.Contains(m.New.HTML, s) {
					t.Errorf("New still holds %q:\n%s\n%s", s, m.New.Text, m.New.HTML)
				}
			}
			if len(tt.quotedText) > 0 && !strings.Contains(m.Body.Text, truncate(m.Quoted.Text, 20)) {
				t.Errorf("Body.Text lost the quoted history")
			}
			if tt.attachments != nil && !slices.Equal(attachmentNames(m), tt.attachments) {
				t.Errorf("attachments = %q, want %q", attachmentNames(m), tt.attachments)
			}
			for _, w := range tt.warnings {
				if !slices.Contains(warningKinds(m), w) {
					t.Errorf("warnings %q lack %q", warningKinds(m), w)
				}
			}
			if tt.warnings == nil && len(m.Warnings) > 0 && tt.kind == KindRegular {
				t.Errorf("unexpected warnings %+v", m.Warnings)
			}
			if c := Classify(m, "patchdesk-test-instance"); c.Kind != tt.kind {
				t.Errorf("Classify = %+v, want kind %s", c, tt.kind)
			}
		})
	}
}

func contains(t *testing.T, what, got string, want []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	t.Parallel()
	m := parseSample(t, "gmail_reply.eml")
	if want := time.Date(2024, 3, 12, 9, 2, 33, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("Date = %v, want %v", m.Date, want)
	}
	if m.InReplyTo != "0b7e5f1c-1111-4a5e-9d7e-2f0c3c9a1a01@acme.patchdesk.local" {
		t.Errorf("InReplyTo = %q", m.InReplyTo)
	}
	if !slices.Equal(m.Recipients, []string{"reply+acme.42.mfrggzdfmztwq2lk@acme.inbound.patchdesk.local"}) {
		t.Errorf("Recipients = %q", m.Recipients)
	}
	if m.Header.Get("Content-Type") == "" || m.Size != len(readSample(t, "gmail_reply.eml")) {
		t.Errorf("Header/Size not kept: %v %d", m.Header, m.Size)
	}

	raw := []byte("Delivered-To: acme@inbound.patchdesk.local\r\n" +
		"X-Original-To: support@customer.example\r\n" +
		"From: \"Doe, Jane\" <Jane.Doe@Example.COM>\r\n" +
		"Reply-To: help desk <helpdesk@example.com>\r\n" +
		"To: a@example.com, \"B\" <b@example.com>\r\n" +
		"Cc: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>, a@example.com\r\n" +
		"Message-ID:\r\n <folded-id@example.com>\r\n" +
		"In-Reply-To: <first@example.com> (Jane's message of Monday)\r\n" +
		"References: <root@example.com>\r\n <mid@example.com>\r\n\t<first@example.com>\r\n" +
		"Subject: =?utf-8?B?w5xiZXI=?= =?utf-8?B?c2ljaHQ=?= [#7]\r\n" +
		"\r\nbody\r\n")
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != (Address{Name: "Doe, Jane", Address: "jane.doe@example.com"}) {
		t.Errorf("From = %+v", m.From)
	}
	if len(m.ReplyTo) != 1 || m.ReplyTo[0].Address != "helpdesk@example.com" {
		t.Errorf("ReplyTo = %+v", m.ReplyTo)
	}
	if len(m.Cc) != 2 || m.Cc[0].Name != "Zoë" {
		t.Errorf("Cc = %+v", m.Cc)
	}
	wantRcpts := []string{"acme@inbound.patchdesk.local", "support@customer.example", "a@example.com", "b@example.com", "zoe@example.com"}
	if !slices.Equal(m.Recipients, wantRcpts) {
		t.Errorf("Recipients = %q, want %q", m.Recipients, wantRcpts)
	}
	if m.MessageID != "folded-id@example.com" || m.InReplyTo != "first@example.com" {
		t.Errorf("MessageID %q InReplyTo %q", m.MessageID, m.InReplyTo)
	}
	if !slices.Equal(m.References, []string{"root@example.com", "mid@example.com", "first@example.com"}) {
		t.Errorf("References = %q", m.References)
	}
	if !slices.Equal(m.ThreadIDs(), []string{"first@example.com", "mid@example.com", "root@example.com"}) {
		t.Errorf("ThreadIDs = %q", m.ThreadIDs())
	}
	if m.Subject != "Übersicht [#7]" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if m.Date != (time.Time{}) {
		t.Errorf("Date = %v, want zero when missing", m.Date)
	}
}

func TestParseMalformedAddresses(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte("From: Jane <jane@example.com\r\nTo: support@acme.inbound.patchdesk.local; other@x.example <broken\r\nSubject: x\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.From.Address != "jane@example.com" {
		t.Errorf("From = %+v", m.From)
	}
	if !slices.Contains(m.Recipients, "support@acme.inbound.patchdesk.local") {
		t.Errorf("Recipients = %q: the routing address must survive a malformed To", m.Recipients)
	}
	if !slices.Contains(warningKinds(m), WarnAddress) {
		t.Errorf("warnings = %q", warningKinds(m))
	}

	m, err = Parse([]byte("Subject: no sender\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.From != (Address{}) || !slices.Contains(warningKinds(m), WarnNoSender) {
		t.Errorf("From = %+v, warnings %q", m.From, warningKinds(m))
	}
}

func TestParseIdempotencyKey(t *testing.T) {
	t.Parallel()
	a := []byte("From: a@example.com\r\nMessage-ID: <same@example.com>\r\n\r\none\r\n")
	b := []byte("Received: by relay\r\nFrom: a@example.com\r\nMessage-ID:   <same@example.com>  \r\n\r\nother copy\r\n")
	ma, _ := Parse(a)
	mb, _ := Parse(b)
	sum := sha256.Sum256([]byte("same@example.com"))
	if ma.Key != hex.EncodeToString(sum[:]) || ma.Key != mb.Key || ma.KeyFromRaw {
		t.Errorf("keys %q %q, want the hash of the Message-ID for both", ma.Key, mb.Key)
	}

	c := []byte("From: a@example.com\r\n\r\nno id\r\n")
	mc, _ := Parse(c)
	sum = sha256.Sum256(c)
	if mc.Key != hex.EncodeToString(sum[:]) || !mc.KeyFromRaw || mc.MessageID != "" {
		t.Errorf("key %q fromRaw %v, want SHA-256 of the raw message", mc.Key, mc.KeyFromRaw)
	}
	md, _ := Parse(append(c, '!'))
	if md.Key == mc.Key {
		t.Error("different raw messages without Message-ID share a key")
	}
	for _, empty := range []string{"<>", " ", "<  >"} {
		m, _ := Parse([]byte("From: a@example.com\r\nMessage-ID: " + empty + "\r\n\r\nx\r\n"))
		if !m.KeyFromRaw || m.MessageID != "" {
			t.Errorf("Message-ID %q: key from raw %v, id %q", empty, m.KeyFromRaw, m.MessageID)
		}
	}

	long := strings.Repeat("x", 5000) + "@example.com"
	ml, _ := Parse([]byte("From: a@example.com\r\nMessage-ID: <" + long + ">\r\n\r\nx\r\n"))
	sum = sha256.Sum256([]byte(long))
	if len(ml.MessageID) != maxIDLen || ml.Key != hex.EncodeToString(sum[:]) {
		t.Errorf("long id: stored %d bytes, key %q; want %d bytes and the hash of the whole id", len(ml.MessageID), ml.Key, maxIDLen)
	}
}

func TestParseRejectsNonEmail(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", " \r\n\t", "just some text without any header line", ":\r\n\r\n"} {
		_, err := Parse([]byte(raw))
		if !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", raw, err)
		}
	}
}

// TestRFC2231Filenames: Go's mime.ParseMediaType drops extended parameters
// in charsets other than UTF-8 and US-ASCII; parseMediaType decodes them.
func TestRFC2231Filenames(t *testing.T) {
	t.Parallel()
	tests := []struct{ header, want string }{
		{`attachment; filename*=iso-8859-1''%E9t%E9.pdf`, "été.pdf"},
		{`attachment; filename*=ISO-8859-1'fr'%E9t%E9.pdf`, "été.pdf"},
		{`attachment; filename*=windows-1252''%80%20invoice.pdf`, "€ invoice.pdf"},
		{`attachment; filename*=UTF-8''%C3%A9t%C3%A9.pdf`, "été.pdf"},
		{`attachment; filename="fallback.pdf"; filename*=iso-8859-1''%E9t%E9.pdf`, "été.pdf"},
		{"attachment;\r\n filename*0*=iso-8859-1'fr'R%E9sum%E9%20de;\r\n filename*1*=%20la%20r%E9union;\r\n filename*2=\".pdf\"", "Résumé de la réunion.pdf"},
		{`attachment; filename*0*=iso-2022-jp''%1B%24B%40A; filename*1*=5a%3Dq%1B%28B.txt`, "請求書.txt"}, // a stateful charset split across segments
		{`attachment; filename*0*=gb2312''%D5%CB%BB%A7; filename*1=.txt`, "账户.txt"},
		{`attachment; filename*=%E9t%E9.pdf`, "\ufffdt\ufffd.pdf"}, // no charset: read as UTF-8, repaired later
		{`attachment; filename*=iso-8859-1''100%.pdf`, "100%.pdf"}, // a stray % is kept
		{`attachment; filename*=x-no-such-charset''abc.pdf`, "abc.pdf"},
		{`attachment; filename="plain.pdf"`, "plain.pdf"},
	}
	for _, tt := range tests {
		_, params, _, err := parseMediaType(tt.header)
		if err != nil {
			t.Errorf("parseMediaType(%q): %v", tt.header, err)
			continue
		}
		if got, _ := cleanText(params["filename"]); got != tt.want {
			t.Errorf("parseMediaType(%q) filename = %q, want %q", tt.header, got, tt.want)
		}
	}
	// The reason for the fallback: the standard library returns no name.
	if _, params, err := mime.ParseMediaType(`attachment; filename*=iso-8859-1''%E9t%E9.pdf`); err != nil || params["filename"] != "" {
		t.Errorf("mime.ParseMediaType now decodes ISO-8859-1 (%q, %v): the fallback may be dropped", params["filename"], err)
	}

	// Through Parse, for name* on Content-Type as well.
	raw := "From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/pdf; name*=iso-8859-1''%C4rger.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n" +
		"--b--\r\n"
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if names := attachmentNames(m); !slices.Equal(names, []string{"Ärger.pdf"}) {
		t.Errorf("attachments = %q", names)
	}
	if string(m.Attachments[0].Content) != "%PDF-" || m.Attachments[0].Size() != 5 {
		t.Errorf("content = %q", m.Attachments[0].Content)
	}
}

func TestAttachmentDetails(t *testing.T) {
	t.Parallel()
	m := parseSample(t, "attachments_rfc2231.eml")
	byName := map[string]Attachment{}
	for _, a := range m.Attachments {
		byName[a.FileName] = a
	}
	if a := byName["été.pdf"]; a.ContentType != "application/pdf" || !bytes.HasPrefix(a.Content, []byte("%PDF-1.4")) || a.Inline {
		t.Errorf("été.pdf = %+v", a)
	}
	// The directory components of "../../etc/notes.txt" are gone, and the
	// text attachment was converted from windows-1252.
	if a := byName["notes.txt"]; string(a.Content) != "Café notes – draft" {
		t.Errorf("notes.txt content = %q", a.Content)
	}
	if a := byName["attachment-6.eml"]; a.ContentType != "message/rfc822" || !bytes.Contains(a.Content, []byte("forwarded-original@example.org")) {
		t.Errorf("forwarded message = %+v", a)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(m.Attachments[0].Open()); err != nil || !bytes.Equal(buf.Bytes(), m.Attachments[0].Content) {
		t.Errorf("Open() read %q, %v", buf.Bytes(), err)
	}

	m = parseSample(t, "apple_mail_inline_image.eml")
	if a := m.Attachments[0]; !a.Inline || a.ContentID != "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF" || a.ContentType != "image/png" || !bytes.HasPrefix(a.Content, []byte("\x89PNG")) {
		t.Errorf("inline image = %+v", a)
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) + ".pdf"
	tests := []struct{ in, ct, want string }{
		{"report.pdf", "application/pdf", "report.pdf"},
		{`C:\Users\jane\Desktop\report.pdf`, "application/pdf", "report.pdf"},
		{"../../etc/passwd", "text/plain", "passwd"},
		{"..", "image/png", "attachment-3.png"},
		{"", "application/x-unknown", "attachment-3"},
		{"a\x00b\r\n.txt", "text/plain", "ab .txt"},
		{long, "application/pdf", strings.Repeat("é", 125) + ".pdf"},
	}
	for _, tt := range tests {
		if got := fileName(tt.in, tt.ct, 3); got != tt.want {
			t.Errorf("fileName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseTooManyParts(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n")
	for range maxParts + 1 {
		b.WriteString("--x\r\nContent-Type: text/plain\r\n\r\npart\r\n")
	}
	b.WriteString("--x--\r\n")
	m, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(warningKinds(m), WarnStructure) || !strings.Contains(m.Body.Text, "part") || len(m.Attachments) != 0 {
		t.Errorf("warnings %q, %d attachments: want the body kept as text", warningKinds(m), len(m.Attachments))
	}
}

// TestParsePastedDashes: lines starting with "--" in a text body (SQL
// comments, command-line flags) are not mistaken for MIME parts.
func TestParsePastedDashes(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\n")
	for range 3 * maxParts {
		b.WriteString("-- a comment\r\nSELECT 1;\r\n--verbose\r\n")
	}
	b.WriteString("--x\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--x--\r\n")
	m, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(warningKinds(m), WarnStructure) || len(m.Attachments) != 1 {
		t.Errorf("warnings %q, %d attachments: the structure must be read", warningKinds(m), len(m.Attachments))
	}
}

func TestParseWarningsBounded(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n")
	for range 200 {
		b.WriteString("--x\r\nContent-Type: image/png; name=a.png\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n")
	}
	b.WriteString("--x--\r\n")
	m, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Warnings) != maxWarnings+1 || m.Warnings[maxWarnings].Kind != WarnTooManyErrors {
		t.Errorf("%d warnings, want %d and a last one saying more were dropped", len(m.Warnings), maxWarnings+1)
	}
}

func TestDeliveryReport(t *testing.T) {
	t.Parallel()
	m := parseSample(t, "dsn_postfix.eml")
	r := m.Report
	if r == nil {
		t.Fatal("no report")
	}
	if r.OriginalMessageID != "0b7e5f1c-1111-4a5e-9d7e-2f0c3c9a1a01@acme.patchdesk.local" || r.ReportingMTA != "mail.acme.example" {
		t.Errorf("report = %+v", r)
	}
	want := RecipientStatus{
		Recipient:  "nobody@customer.example",
		Action:     "failed",
		Status:     "5.1.1",
		Diagnostic: "550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown in virtual mailbox table",
	}
	if len(r.Recipients) != 1 || r.Recipients[0] != want {
		t.Errorf("recipients = %+v, want %+v", r.Recipients, want)
	}
	// The returned copy carries our loop header; the report itself does not.
	if c := Classify(m, "patchdesk-test-instance"); c.Kind != KindDeliveryStatus {
		t.Errorf("Classify = %+v", c)
	}

	m = parseSample(t, "dsn_exchange_headers.eml")
	r = m.Report
	if r.OriginalMessageID != "c0ffee00-3333-4c5d-8e9f-a1b2c3d4e5f6@acme.patchdesk.local" {
		t.Errorf("original id = %q (from text/rfc822-headers)", r.OriginalMessageID)
	}
	if len(r.Recipients) != 2 || len(r.Failed()) != 1 || r.Failed()[0].Recipient != "priya.old@contoso.example" || r.Failed()[0].Status != "5.1.10" {
		t.Errorf("recipients = %+v, failed %+v", r.Recipients, r.Failed())
	}
	if r.Recipients[1].Action != "delayed" || r.Recipients[1].Failed() {
		t.Errorf("delayed recipient = %+v", r.Recipients[1])
	}

	// A bounce without status fields but with Exim's X-Failed-Recipients.
	raw := "From: Mail Delivery System <Mailer-Daemon@mx.example>\r\nX-Failed-Recipients: gone@example.com\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n--r--\r\n"
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Report == nil || len(m.Report.Failed()) != 1 || m.Report.Failed()[0].Recipient != "gone@example.com" {
		t.Errorf("report = %+v", m.Report)
	}

	if m := parseSample(t, "gmail_reply.eml"); m.Report != nil {
		t.Errorf("a reply has a report: %+v", m.Report)
	}
}

func TestCleanText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		repaired bool
	}{
		{"plain\ttext\n", "plain\ttext\n", false},
		{"crlf\r\nlone\rcr", "crlf\nlone\ncr", false},
		{"nul\x00here", "nulhere", true},
		{"bad \xff\xfe utf8", "bad \ufffd\ufffd utf8", true},
		{"esc\x1b[31m del\x7f", "esc[31m del", false},
		{"ok ünïcode €", "ok ünïcode €", false},
	}
	for _, tt := range tests {
		got, repaired := cleanText(tt.in)
		if got != tt.want || repaired != tt.repaired {
			t.Errorf("cleanText(%q) = %q, %v; want %q, %v", tt.in, got, repaired, tt.want, tt.repaired)
		}
	}
	if got := cleanLine(" a\r\n\tb  \x00c "); got != "a b c" {
		t.Errorf("cleanLine = %q", got)
	}
}

// TestParseHugeHeaders: thousands of Received lines, a 1 MB header line and
// hundreds of References are read, bounded, and do not fail the message.
func TestParseHugeHeaders(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 5000 {
		b.WriteString("Received: from relay" + strings.Repeat("x", i%50) + ".example.net by mx.example.net; Tue, 12 Mar 2024 09:15:00 +0000\r\n")
	}
	b.WriteString("X-Long: " + strings.Repeat("a", 1<<20) + "\r\n")
	b.WriteString("Subject: " + strings.Repeat("=?utf-8?q?=C3=A9?= ", 20000) + "\r\n")
	b.WriteString("References:")
	for i := range 2000 {
		b.WriteString(" <ref" + strings.Repeat("r", i%10) + "-" + string(rune('a'+i%26)) + "@example.com>\r\n")
	}
	b.WriteString("From: big@example.com\r\nMessage-ID: <huge@example.com>\r\n\r\nsmall body\r\n")
	m, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStrings(m); err != nil {
		t.Fatal(err)
	}
	if m.Body.Text != "small body" || m.From.Address != "big@example.com" || len(m.Header.Values("Received")) != 5000 {
		t.Errorf("body %q from %q received %d", m.Body.Text, m.From.Address, len(m.Header.Values("Received")))
	}
	if len(m.References) > maxReferences || !strings.HasPrefix(m.Subject, "éé") {
		t.Errorf("%d references, subject %q…", len(m.References), truncate(m.Subject, 10))
	}
}

// TestParseDeepHTML: the HTML parser refuses nesting deeper than 512; the
// body is then kept whole and sanitised, with a warning.
func TestParseDeepHTML(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("<div>", 2000) + "deep <b>text</b><script>x()</script>" + strings.Repeat("</div>", 2000)
	m, err := Parse([]byte("From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	if m.Body.Text != "deep text" || !strings.Contains(m.Body.HTML, "deep <b>text</b>") || strings.Contains(m.Body.HTML, "script") || m.New != m.Body {
		t.Errorf("body = %+v", m.Body)
	}
	if !slices.Contains(warningKinds(m), WarnStructure) {
		t.Errorf("warnings = %q", warningKinds(m))
	}
}

// TestBodyParts: which parts make the body and which are attachments.
func TestBodyParts(t *testing.T) {
	t.Parallel()
	raw := "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n" +
		"--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nFirst text.\r\n" +
		// Apple Mail attaches files inline, with a name: not body text.
		"--m\r\nContent-Type: text/plain; name=log.txt\r\nContent-Disposition: inline; filename=log.txt\r\n\r\nERROR 42\r\n" +
		// Untyped parts are text/plain (RFC 2045).
		"--m\r\n\r\nSecond text.\r\n" +
		"--m\r\nContent-Type: text/html\r\n\r\n<p>HTML body</p>\r\n" +
		"--m\r\nContent-Type: text/html\r\n\r\n<p>Second HTML</p>\r\n" +
		"--m--\r\n"
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Body.Text != "First text.\n\nSecond text." {
		t.Errorf("text = %q", m.Body.Text)
	}
	if m.Body.HTML != "<p>HTML body</p>" {
		t.Errorf("html = %q", m.Body.HTML)
	}
	if names := attachmentNames(m); !slices.Equal(names, []string{"log.txt", "attachment-2.html"}) {
		t.Errorf("attachments = %q", names)
	}
	if !m.Attachments[0].Inline || string(m.Attachments[0].Content) != "ERROR 42" {
		t.Errorf("log.txt = %+v", m.Attachments[0])
	}

	// multipart/alternative: one text, one HTML, nothing else.
	alt := "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n" +
		"--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n--a\r\nContent-Type: text/enriched\r\n\r\n<bold>rich</bold>\r\n" +
		"--a\r\nContent-Type: text/html\r\n\r\n<b>rich</b>\r\n--a--\r\n"
	m, err = Parse([]byte(alt))
	if err != nil {
		t.Fatal(err)
	}
	if m.Body.Text != "plain" || m.Body.HTML != "<b>rich</b>" || m.TextFromHTML || len(m.Attachments) != 0 {
		t.Errorf("body = %+v, attachments %q", m.Body, attachmentNames(m))
	}

	// An Outlook invitation: the calendar alternative is kept as an attachment.
	invite := "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n" +
		"--a\r\nContent-Type: text/plain\r\n\r\nmeeting\r\n--a\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--a--\r\n"
	m, err = Parse([]byte(invite))
	if err != nil {
		t.Fatal(err)
	}
	if names := attachmentNames(m); !slices.Equal(names, []string{"attachment-1.ics"}) {
		t.Errorf("attachments = %q", names)
	}
}
