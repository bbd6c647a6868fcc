package inbound

import (
	"bytes"
	"io"
	"mime"
	"sort"
	"strconv"
	"strings"

	"github.com/jhillyerd/enmime/v2/mediatype"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// encodingFor finds the decoder for a MIME charset label: WHATWG labels
// first (what browsers do: iso-8859-1 is read as its superset windows-1252,
// gb2312 as GBK), then the IANA registry. ok is false for labels neither
// knows. UTF-8 and ASCII labels return a nil encoding: no conversion.
func encodingFor(label string) (enc encoding.Encoding, ok bool) {
	label = strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`))
	if isUTF8Label(label) {
		return nil, true
	}
	if e, err := htmlindex.Get(label); err == nil {
		return e, true
	}
	if e, err := ianaindex.MIME.Encoding(label); err == nil && e != nil {
		return e, true
	}
	return nil, false
}

// isUTF8Label reports labels read as UTF-8: UTF-8 itself, and ASCII, which
// UTF-8 extends (8-bit bytes in a part labelled ASCII are today far more
// often UTF-8 than anything else; invalid ones are repaired afterwards).
func isUTF8Label(label string) bool {
	switch strings.ToLower(label) {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "unicode-1-1-utf-8", "utf8mb4":
		return true
	}
	return false
}

// decodeBytes converts b from the named charset to UTF-8. An unknown charset
// or a conversion error leaves the bytes as they are (invalid UTF-8 is
// repaired later) and ok false.
func decodeBytes(label string, b []byte) (string, bool) {
	enc, ok := encodingFor(label)
	if !ok {
		return string(b), false
	}
	if enc == nil {
		return string(b), true
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return string(b), false
	}
	return string(out), true
}

// charsetReader is the mime.WordDecoder hook for RFC 2047 encoded words in
// any charset encodingFor knows.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	enc, ok := encodingFor(label)
	if !ok {
		return nil, &unknownCharsetError{label}
	}
	if enc == nil {
		return r, nil
	}
	return enc.NewDecoder().Reader(r), nil
}

type unknownCharsetError struct{ label string }

func (e *unknownCharsetError) Error() string { return "unknown charset " + strconv.Quote(e.label) }

// decodeHeader decodes RFC 2047 encoded words; a value it cannot decode is
// returned as it came (and repaired to UTF-8 by the caller).
func decodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	dec := mime.WordDecoder{CharsetReader: charsetReader}
	out, err := dec.DecodeHeader(v)
	if err != nil {
		return v
	}
	return out
}

// parseMediaType is the media type parser handed to enmime. On top of
// enmime's tolerant parser it
//   - decodes RFC 2231 extended parameters (filename*=iso-8859-1”%E9t%E9.pdf,
//     and continuations filename*0*=…; filename*1*=…) in any charset: Go's
//     mime.ParseMediaType decodes only UTF-8 and US-ASCII ones and drops the
//     others, so such attachments would arrive without a name;
//   - reads text/* parts with no charset, or an ASCII one, as UTF-8, so
//     character detection stays off (DESIGN: detection guesses wrong on
//     short texts) and unlabelled UTF-8 is not turned into mojibake by
//     enmime's us-ascii→windows-1252 mapping.
func parseMediaType(v string) (mtype string, params map[string]string, invalid []string, err error) {
	mtype, params, invalid, err = mediatype.ParseWithOptions(v, mediatype.ParseOptions{StripMediaTypeInvalidCharacters: true})
	if err != nil {
		return "", nil, nil, err
	}
	if strings.Contains(v, "*") {
		for name, value := range rfc2231Params(v) {
			if params == nil {
				params = map[string]string{}
			}
			params[name] = value
		}
	}
	if strings.HasPrefix(mtype, "text/") {
		if params == nil {
			params = map[string]string{}
		}
		if isUTF8Label(params["charset"]) {
			params["charset"] = "utf-8"
		}
	}
	return mtype, params, invalid, nil
}

// maxParamSegments bounds RFC 2231 continuations (name*0 … name*N) per parameter.
const maxParamSegments = 100

// segment is one piece of an RFC 2231 parameter value.
type segment struct {
	value   string
	encoded bool // name*N* or name*: percent-encoded, the first carries charset'language'
}

// rfc2231Params decodes the RFC 2231 extended parameters of a header value
// (Content-Type or Content-Disposition), keyed by lowercase base name. Plain
// parameters are left to the regular parser. It is lenient: a missing
// charset'language' prefix is read as UTF-8, a stray '%' is kept.
func rfc2231Params(v string) map[string]string {
	pieces := map[string]map[int]segment{}
	for i, p := range splitParams(v) {
		if i == 0 {
			continue // the media type itself
		}
		key, value, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(key))
		base, rest, star := strings.Cut(key, "*")
		if !star || base == "" {
			continue
		}
		seg := segment{value: unquote(strings.TrimSpace(value))}
		n := -1 // name*: a single extended value
		if rest != "" {
			num, enc := strings.CutSuffix(rest, "*")
			k, err := strconv.Atoi(num)
			if err != nil || k < 0 || k >= maxParamSegments {
				continue
			}
			n, seg.encoded = k, enc
		} else {
			seg.encoded = true
		}
		if pieces[base] == nil {
			pieces[base] = map[int]segment{}
		}
		pieces[base][n] = seg
	}
	out := map[string]string{}
	for base, segs := range pieces {
		if value, ok := joinSegments(segs); ok {
			out[base] = value
		}
	}
	return out
}

// joinSegments assembles one RFC 2231 value: the single extended form wins,
// else continuations 0…N in order, percent-decoded where marked, converted
// from the charset named by the first segment as a whole (so a multi-byte
// or stateful charset split across segments still decodes).
func joinSegments(segs map[int]segment) (string, bool) {
	if s, ok := segs[-1]; ok {
		charset, text := splitCharset(s.value)
		out, _ := decodeBytes(charset, percentDecode(text))
		return out, true
	}
	keys := make([]int, 0, len(segs))
	for k := range segs {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	if len(keys) == 0 || keys[0] != 0 {
		return "", false
	}
	var raw bytes.Buffer
	charset := ""
	for i, k := range keys {
		if k != i {
			break // a gap ends the value, as RFC 2231 reads it
		}
		s := segs[k]
		text := s.value
		if k == 0 && s.encoded {
			charset, text = splitCharset(text)
		}
		if s.encoded {
			raw.Write(percentDecode(text))
		} else {
			raw.WriteString(text)
		}
	}
	out, _ := decodeBytes(charset, raw.Bytes())
	return out, true
}

// splitCharset splits charset'language'text; without the two quotes the
// whole value is text in an unnamed (UTF-8) charset.
func splitCharset(v string) (charset, text string) {
	cs, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", v
	}
	_, text, ok = strings.Cut(rest, "'")
	if !ok {
		return "", v
	}
	return cs, text
}

// percentDecode decodes %XX escapes; a '%' not followed by two hex digits is kept.
func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			out = append(out, byte(b))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// splitParams splits a header value at the semicolons outside quoted strings.
func splitParams(v string) []string {
	var out []string
	var cur strings.Builder
	inQuote, escaped := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && inQuote:
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ';' && !inQuote:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(out, cur.String())
}

// unquote removes the quotes and backslash escapes of a quoted string.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
