package inbound

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/patchdesk/patchdesk/modules/errs"
)

// Limits that keep one hostile message from costing more than its size.
const (
	// maxParts bounds the MIME delimiter lines read as structure: enmime
	// spends a 4 KiB buffer per part, so a 36 MiB message of empty parts
	// would need gigabytes. Beyond it the body is kept as plain text.
	maxParts = 1000
	// maxWarnings bounds the warnings kept per message.
	maxWarnings = 50
	// maxIDLen bounds a stored Message-ID (and each reference), in bytes,
	// so it fits a btree index; the idempotency key hashes the whole ID.
	maxIDLen = 512
	// maxReferences bounds the References kept: the first (the thread's
	// root) and the most recent ones.
	maxReferences = 50
	// maxFileName bounds an attachment name, in bytes.
	maxFileName = 255
	// maxSubject bounds the subject, in bytes (RFC 5322's line limit).
	maxSubject = 998
)

// Message is one parsed inbound email. Every string in it is valid UTF-8
// without NUL, header strings are on one line.
type Message struct {
	// MessageID is the Message-ID without angle brackets or whitespace, at
	// most 512 bytes; "" when the message has none.
	MessageID string
	// Key is the idempotency key: hex SHA-256 of the whole normalised
	// Message-ID, or of the raw message when it has none (KeyFromRaw).
	// The same message delivered twice has the same Key.
	Key        string
	KeyFromRaw bool
	// From is the first address of From ("" Address when unreadable).
	From    Address
	ReplyTo []Address
	To      []Address
	Cc      []Address
	// Recipients are the addresses the message was delivered to, for
	// routing: Delivered-To, X-Original-To, Envelope-To and X-Envelope-To
	// (the real envelope recipients, also of Bcc and forwarded copies)
	// first, then To and Cc; lowercase, without duplicates.
	Recipients []string
	// Subject is decoded (RFC 2047), at most 998 bytes.
	Subject string
	// Date is the Date header; zero when missing or unreadable.
	Date time.Time
	// InReplyTo is the first Message-ID of In-Reply-To, normalised like MessageID.
	InReplyTo string
	// References lists the References Message-IDs, oldest first.
	References []string
	// Body is the whole body. Body.Text is the text/plain part or, when
	// there is none (TextFromHTML), a rendering of the HTML; Body.HTML is
	// the sanitised text/html part ("" when none).
	Body         Body
	TextFromHTML bool
	// New is Body without the quoted history: what a comment shows.
	// Quoted is the history cut from it, kept so it stays viewable; both
	// empty-Quoted and New == Body when nothing was cut (no quote, an
	// interleaved reply, or a forwarded message, whose quote is the point).
	New    Body
	Quoted Body
	// Attachments are the non-body parts in document order: attachments,
	// inline images, forwarded messages (message/rfc822).
	Attachments []Attachment
	// Report is the delivery status notification, nil for other mail.
	Report *DeliveryReport
	// Header is the top-level header, keys canonical, values repaired to
	// UTF-8 on one line but not RFC 2047 decoded.
	Header textproto.MIMEHeader
	// Size is the raw message size in bytes.
	Size int
	// Warnings lists what was malformed and repaired or lost.
	Warnings []Warning
}

// Body is a message body in both forms.
type Body struct {
	Text string
	HTML string
}

// Address is a mailbox: display name (decoded) and address (lowercase).
type Address struct {
	Name    string
	Address string
}

// Attachment is one non-body MIME part.
type Attachment struct {
	// FileName is the decoded name (RFC 2047 or RFC 2231, any charset),
	// without directory components; generated ("attachment-2.pdf") when
	// the part has none.
	FileName string
	// ContentType is the media type without parameters, lowercase.
	ContentType string
	// ContentID is the Content-ID without angle brackets ("" when none);
	// the HTML refers to it as cid:<ContentID>.
	ContentID string
	// Inline is true for parts shown within the body (Content-Disposition
	// inline, or no disposition but a Content-ID).
	Inline bool
	// Content is the decoded content (base64 and quoted-printable undone;
	// text/* parts converted to UTF-8 by the MIME parser).
	Content []byte
}

// Size is the decoded size in bytes.
func (a *Attachment) Size() int64 { return int64(len(a.Content)) }

// Open returns a reader over the content, for storage that streams.
func (a *Attachment) Open() io.Reader { return bytes.NewReader(a.Content) }

// Warning is a defect found while parsing; the message is still usable.
type Warning struct {
	// Kind names the defect: enmime's names ("Malformed Header", "Missing
	// Boundary", "Character Set Conversion", "Malformed Base64", …) or the
	// Warn* constants of this package.
	Kind   string
	Detail string
	// Severe means part of the message was lost.
	Severe bool
}

// Warning kinds added by this package.
const (
	WarnInvalidUTF8   = "Invalid UTF-8"
	WarnDate          = "Malformed Date"
	WarnAddress       = "Malformed Address"
	WarnNoSender      = "No Sender"
	WarnStructure     = "Unreadable MIME Structure"
	WarnRemoteImages  = "Remote Images Removed"
	WarnTooManyErrors = "Too Many Warnings"
)

// mimeParser is enmime configured for inbound mail: character detection
// off (declared charsets only, see parseMediaType), malformed parts skipped
// with an error rather than failing the message, corrupt base64 text kept.
// Only its part tree is used (ReadParts): the body and attachments are
// chosen here. An enmime.Parser holds only options; ReadParts copies it.
var mimeParser = enmime.NewParser(
	enmime.DisableCharacterDetection(true),
	enmime.SkipMalformedParts(true),
	enmime.MultipartWOBoundaryAsSinglePart(true),
	enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
	enmime.MaxStoredPartErrors(maxWarnings),
	enmime.SetCustomParseMediaType(parseMediaType),
)

// Parse reads a raw RFC 5322 message. It fails (errs.ErrInvalid) only on
// input that is not an email at all: empty, or without a header; anything
// else malformed is repaired and listed in Warnings.
func Parse(raw []byte) (*Message, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errs.Errorf(errs.ErrInvalid, "the message is empty")
	}
	m := &Message{Size: len(raw)}
	var root *enmime.Part
	if n := delimiterLines(raw); n > maxParts {
		m.warn(WarnStructure, fmt.Sprintf("%d MIME delimiter lines (more than %d): body kept as plain text", n, maxParts), true)
	} else {
		var err error
		if root, err = mimeParser.ReadParts(bytes.NewReader(raw)); err != nil {
			m.warn(WarnStructure, "MIME structure unreadable, body kept as plain text: "+err.Error(), true)
			root = nil
		}
	}
	if root == nil {
		var err error
		if root, err = plainPart(raw); err != nil {
			return nil, err
		}
	}
	if len(root.Header) == 0 {
		return nil, errs.Errorf(errs.ErrInvalid, "the message has no header")
	}
	m.readHeader(root.Header, raw)
	texts, htmlPart := bodyParts(root)
	m.Attachments = attachments(root, texts, htmlPart)
	var sb strings.Builder
	for i, p := range texts {
		if i > 0 {
			sb.WriteString("\n\n")
		}
		sb.Write(p.Content)
	}
	text, htmlBody := sb.String(), ""
	if htmlPart != nil {
		htmlBody = string(htmlPart.Content)
	}
	if strings.TrimSpace(text) == "" && strings.TrimSpace(htmlBody) == "" && len(m.Attachments) == 0 {
		// A multipart without a boundary parameter, or whose boundary never
		// occurs, yields no part: keep what the sender wrote rather than nothing.
		if body := rawBody(raw); len(bytes.TrimSpace(body)) > 0 {
			text = string(body)
			m.warn(WarnStructure, "no readable MIME part: the raw body is kept as text", false)
		}
	}
	m.readBody(text, htmlBody)
	m.Report = deliveryReport(root)
	_ = root.DepthMatchAll(func(p *enmime.Part) bool {
		for _, e := range p.Errors {
			m.warn(e.Name, e.Detail, e.Severe)
		}
		return false
	})
	return m, nil
}

// bodyParts picks the parts the body is made of: the text/plain parts
// (untyped ones too, RFC 2045's default) and the first text/html part,
// leaves that are neither marked attachment nor carry a file name (Apple
// Mail sends attached files inline, with a name). In a multipart/alternative
// message only the first text part counts: the others say the same.
func bodyParts(root *enmime.Part) (texts []*enmime.Part, htmlPart *enmime.Part) {
	isText := func(p *enmime.Part) bool {
		return isBodyLeaf(p) && (p.ContentType == "text/plain" || p.ContentType == "")
	}
	if root.ContentType == "multipart/alternative" {
		if p := root.BreadthMatchFirst(isText); p != nil {
			texts = []*enmime.Part{p}
		}
	} else {
		texts = root.DepthMatchAll(isText)
	}
	htmlPart = root.DepthMatchFirst(func(p *enmime.Part) bool {
		return isBodyLeaf(p) && p.ContentType == "text/html"
	})
	return texts, htmlPart
}

func isBodyLeaf(p *enmime.Part) bool {
	return p.FirstChild == nil && p.Disposition != "attachment" && p.FileName == ""
}

// delimiterLines counts the lines that may open a MIME part: "--…"
// followed by a blank line or a Content- header. A pasted SQL script or
// command line ("-- note", "--verbose") rarely looks like that; a message
// built to exhaust the parser with empty parts always does.
func delimiterLines(raw []byte) int {
	n := 0
	for rest := raw; ; {
		i := bytes.Index(rest, []byte("\n--"))
		if i < 0 {
			return n
		}
		rest = rest[i+3:]
		eol := bytes.IndexByte(rest, '\n')
		if eol < 0 {
			return n
		}
		next := rest[eol+1:]
		if len(next) == 0 || next[0] == '\n' || next[0] == '\r' || hasPrefixFold(next, "content-") {
			n++
		}
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

// plainPart is the fallback when the MIME structure cannot be read (or
// must not be, see maxParts): the header as enmime reads it, the rest of
// the message as one text/plain part.
func plainPart(raw []byte) (*enmime.Part, error) {
	r := bufio.NewReader(bytes.NewReader(raw))
	h, err := enmime.ReadHeader(r, discard{})
	if err != nil && len(h) == 0 {
		return nil, errs.Errorf(errs.ErrInvalid, "the message header is unreadable")
	}
	body, _ := io.ReadAll(r) // a bytes.Reader does not fail
	return &enmime.Part{PartID: "0", Header: h, ContentType: "text/plain", Content: body}, nil
}

// rawBody returns what follows the header (the first blank line).
func rawBody(raw []byte) []byte {
	i, j := bytes.Index(raw, []byte("\r\n\r\n")), bytes.Index(raw, []byte("\n\n"))
	switch {
	case i >= 0 && (j < 0 || i < j):
		return raw[i+4:]
	case j >= 0:
		return raw[j+2:]
	}
	return nil
}

// discard drops header warnings in the fallback: the structure warning says enough.
type discard struct{}

func (discard) AddError(string, string, ...any)   {}
func (discard) AddWarning(string, string, ...any) {}

func (m *Message) warn(kind, detail string, severe bool) {
	if len(m.Warnings) == maxWarnings {
		m.Warnings = append(m.Warnings, Warning{Kind: WarnTooManyErrors, Detail: "further warnings dropped"})
	}
	if len(m.Warnings) > maxWarnings {
		return
	}
	m.Warnings = append(m.Warnings, Warning{Kind: cleanLine(kind), Detail: truncate(cleanLine(detail), 500), Severe: severe})
}

// readHeader fills the header fields and the idempotency key.
func (m *Message) readHeader(h textproto.MIMEHeader, raw []byte) {
	m.Header = make(textproto.MIMEHeader, len(h))
	for k, vs := range h {
		key := textproto.CanonicalMIMEHeaderKey(cleanLine(k))
		for _, v := range vs {
			m.Header.Add(key, cleanLine(v))
		}
	}
	if !headerValid(h) {
		m.warn(WarnInvalidUTF8, "header values repaired", false)
	}

	ids := messageIDs(h.Get("Message-Id"))
	if len(ids) > 0 {
		full := ids[0]
		m.MessageID = truncate(full, maxIDLen)
		sum := sha256.Sum256([]byte(full))
		m.Key = hex.EncodeToString(sum[:])
	} else {
		sum := sha256.Sum256(raw)
		m.Key, m.KeyFromRaw = hex.EncodeToString(sum[:]), true
	}
	if irt := messageIDs(h.Get("In-Reply-To")); len(irt) > 0 {
		m.InReplyTo = truncate(irt[0], maxIDLen)
	}
	m.References = references(h.Values("References"))

	m.Subject = truncate(cleanLine(decodeHeader(h.Get("Subject"))), maxSubject)
	if d := strings.TrimSpace(h.Get("Date")); d != "" {
		t, err := mail.ParseDate(cleanLine(d))
		if err != nil {
			m.warn(WarnDate, "Date "+strconv.Quote(truncate(cleanLine(d), 80))+" unreadable", false)
		} else {
			m.Date = t
		}
	}

	from := m.addresses(h, "From")
	if len(from) == 0 {
		from = m.addresses(h, "Sender")
	}
	if len(from) > 0 {
		m.From = from[0]
	} else {
		m.warn(WarnNoSender, "no readable From address", false)
	}
	m.ReplyTo = m.addresses(h, "Reply-To")
	m.To = m.addresses(h, "To")
	m.Cc = m.addresses(h, "Cc")
	var rcpts []Address
	for _, name := range []string{"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"} {
		rcpts = append(rcpts, m.addresses(h, name)...)
	}
	rcpts = append(append(rcpts, m.To...), m.Cc...)
	seen := map[string]bool{}
	for _, a := range rcpts {
		if a.Address != "" && !seen[a.Address] {
			seen[a.Address] = true
			m.Recipients = append(m.Recipients, a.Address)
		}
	}
}

// headerValid reports whether every header name and value is valid UTF-8.
func headerValid(h textproto.MIMEHeader) bool {
	for k, vs := range h {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// looseAddress finds addresses in a header the address parser refused.
var looseAddress = regexp.MustCompile(`[^\s<>(),;:"\[\]]+@[^\s<>(),;:"\[\]]+`)

// addresses reads every value of an address header; an unparseable one is
// searched for anything shaped like an address, with a warning.
func (m *Message) addresses(h textproto.MIMEHeader, name string) []Address {
	var out []Address
	for _, v := range h.Values(name) {
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := enmime.ParseAddressList(v)
		if err != nil {
			if err != mail.ErrHeaderNotPresent {
				m.warn(WarnAddress, name+": "+err.Error(), false)
				for _, a := range looseAddress.FindAllString(cleanLine(v), 20) {
					if addr := normalizeAddress(a); addr != "" {
						out = append(out, Address{Address: addr})
					}
				}
			}
			continue
		}
		for _, a := range list {
			if addr := normalizeAddress(a.Address); addr != "" {
				out = append(out, Address{Name: truncate(cleanLine(a.Name), 200), Address: addr})
			}
		}
	}
	return out
}

// normalizeAddress lowercases an address and strips what cannot be in one.
func normalizeAddress(a string) string {
	a = strings.ToLower(cleanLine(a))
	a = strings.Trim(a, "<>")
	if len(a) > 320 || !strings.Contains(a, "@") {
		return ""
	}
	return a
}

// msgIDToken matches one bracketed Message-ID.
var msgIDToken = regexp.MustCompile(`<([^<>]*)>`)

// messageIDs returns the normalised Message-IDs in a header value: the
// contents of each <…>, or, without brackets, each whitespace-separated
// token; internal whitespace (folding) removed.
func messageIDs(v string) []string {
	v = cleanLine(v)
	var raw []string
	if ms := msgIDToken.FindAllStringSubmatch(v, -1); len(ms) > 0 {
		for _, m := range ms {
			raw = append(raw, m[1])
		}
	} else {
		for _, f := range strings.Fields(v) {
			raw = append(raw, strings.Trim(f, "<>"))
		}
	}
	out := raw[:0]
	for _, id := range raw {
		id = strings.Join(strings.Fields(id), "")
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// references reads References: unique IDs in order, at most maxReferences
// (the root and the most recent).
func references(values []string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, id := range messageIDs(v) {
			id = truncate(id, maxIDLen)
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(ids) > maxReferences {
		ids = append(ids[:1], ids[len(ids)-maxReferences+1:]...)
	}
	return ids
}

// ThreadIDs lists the Message-IDs this message answers, most relevant
// first: In-Reply-To, then References newest first. The pipeline looks
// them up among the Message-IDs it sent or received for a ticket.
func (m *Message) ThreadIDs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	add(m.InReplyTo)
	for i := len(m.References) - 1; i >= 0; i-- {
		add(m.References[i])
	}
	return out
}

// forwardSubject matches a forwarded message's subject in common languages.
var forwardSubject = regexp.MustCompile(`(?i)^\s*(\[[^\]]{0,40}\]\s*)?(fwd?|wg|tr|rv|enc|doorst)\s*:`)

// readBody fills Body, New and Quoted from the text and HTML parts.
func (m *Message) readBody(rawText, rawHTML string) {
	text, repaired := cleanText(rawText)
	if repaired {
		m.warn(WarnInvalidUTF8, "text body repaired", false)
	}
	text = strings.TrimSpace(text)
	cut := !forwardSubject.MatchString(m.Subject)

	if strings.TrimSpace(rawHTML) != "" {
		if _, repaired := cleanText(rawHTML); repaired {
			m.warn(WarnInvalidUTF8, "HTML body repaired", false)
		}
		h := readHTML(rawHTML, cut)
		if h.unparsed != nil {
			m.warn(WarnStructure, "HTML body not cut: "+h.unparsed.Error(), false)
		}
		if h.remoteImages > 0 {
			m.warn(WarnRemoteImages, fmt.Sprintf("%d remote image(s) replaced by their description", h.remoteImages), false)
		}
		m.Body.HTML, m.New.HTML, m.Quoted.HTML = h.body.HTML, h.fresh.HTML, h.quoted.HTML
		if text == "" {
			m.TextFromHTML = true
			m.Body.Text, m.New.Text, m.Quoted.Text = h.body.Text, h.fresh.Text, h.quoted.Text
			return
		}
	}
	m.Body.Text = text
	m.New.Text = text
	if cut {
		m.New.Text, m.Quoted.Text = SplitText(text)
	}
}

// attachments lists the leaf parts that are not the body, in document order.
func attachments(root *enmime.Part, texts []*enmime.Part, htmlPart *enmime.Part) []Attachment {
	parts := root.DepthMatchAll(func(p *enmime.Part) bool {
		return p.FirstChild == nil && !strings.HasPrefix(p.ContentType, "multipart/") &&
			p != htmlPart && !slices.Contains(texts, p) && !isAlternateRendering(p)
	})
	out := make([]Attachment, 0, len(parts))
	for i, p := range parts {
		ct := strings.ToLower(cleanLine(p.ContentType))
		if ct == "" {
			ct = "application/octet-stream"
		}
		cid := truncate(cleanLine(p.ContentID), maxIDLen)
		out = append(out, Attachment{
			FileName:    fileName(p.FileName, ct, i+1),
			ContentType: ct,
			ContentID:   cid,
			Inline:      p.Disposition == "inline" || (p.Disposition == "" && cid != ""),
			Content:     p.Content,
		})
	}
	return out
}

// isAlternateRendering reports another rendering of the body in a
// multipart/alternative (a second text, text/enriched): not an attachment.
// Other alternatives, such as Outlook's text/calendar invitation, are kept.
func isAlternateRendering(p *enmime.Part) bool {
	if p.Parent == nil || p.Parent.ContentType != "multipart/alternative" || !isBodyLeaf(p) {
		return false
	}
	switch p.ContentType {
	case "", "text/plain", "text/html", "text/enriched", "text/richtext":
		return true
	}
	return false
}

// extensions gives generated names a useful extension.
var extensions = map[string]string{
	"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
	"image/webp": ".webp", "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
	"message/rfc822": ".eml", "message/delivery-status": ".txt", "text/rfc822-headers": ".txt",
}

// fileName makes a part's name safe to store and show: decoded, on one
// line, without directory components, at most maxFileName bytes (keeping
// the extension), generated when empty.
func fileName(name, contentType string, n int) string {
	name = cleanLine(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		name = ""
	}
	if name == "" {
		return "attachment-" + strconv.Itoa(n) + extensions[contentType]
	}
	if len(name) > maxFileName {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i >= 0 && len(name)-i <= 16 {
			ext = name[i:]
		}
		name = truncate(name[:len(name)-len(ext)], maxFileName-len(ext)) + ext
	}
	return name
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
