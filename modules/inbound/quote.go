package inbound

import (
	"regexp"
	"strings"
)

// Patterns of the line that introduces quoted history. Each is matched
// against one trimmed line, or two or three joined (Gmail wraps a long
// attribution after the address).
var (
	// originalMessage is Outlook's and Outlook Express's separator, in the
	// languages PatchDesk's customers write.
	originalMessage = regexp.MustCompile(`(?i)^[-_=]{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|mensagem original|messaggio originale|oorspronkelijk bericht|originalnachricht)\s*[-_=]{2,}$`)
	// originalMessageInline finds the separator inside a longer HTML text node.
	originalMessageInline = regexp.MustCompile(`(?i)-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original)\s*-{2,}`)
	// strongAttribution is a mail client's attribution line: "On … wrote:",
	// "Am … schrieb …:", "Le … a écrit :", "El … escribió:", and the
	// Portuguese, Dutch and Italian forms.
	strongAttribution = regexp.MustCompile(`(?i)^(on\s.{4,}\swrote|am\s.{4,}\sschrieb\b.*|le\s.{4,}\sa\sécrit|el\s.{4,}\sescribió|em\s.{4,}\sescreveu|op\s.{4,}\sschreef\b.*|il\s.{4,}\sha\sscritto)[\s\x{00a0}]*:$`)
	// weakAttribution is a bare "Name wrote:", trusted only when quoted lines follow.
	weakAttribution = regexp.MustCompile(`(?i)^.{1,160}\s(wrote|schrieb|a\sécrit|escribió|escreveu|schreef|ha\sscritto)[\s\x{00a0}]*:$`)
	// header labels of Outlook's reply block, optionally bold ("*From:*") in text renderings.
	outlookFrom = regexp.MustCompile(`(?i)^\*?(from|von|de|da|van)\*?[\s\x{00a0}]*:`)
	outlookSent = regexp.MustCompile(`(?i)^\*?(sent|date|gesendet|datum|envoyé|date d'envoi|enviado|enviado el|fecha|data|inviato|verzonden)\*?[\s\x{00a0}]*:`)
	outlookTo   = regexp.MustCompile(`(?i)^\*?(to|an|à|a|para|aan|subject|betreff|objet|asunto|oggetto|onderwerp|assunto|cc)\*?[\s\x{00a0}]*:`)
	underscores = regexp.MustCompile(`^_{10,}$`)
	// dated finds a time (9:14) or a year (2024) in an attribution.
	dated = regexp.MustCompile(`\b\d{1,2}:\d{2}\b|\b(19|20)\d{2}\b`)
)

// SplitText separates a plain-text reply into the new text and the quoted
// history below it. History starts at the first of:
//   - an "-----Original Message-----" separator or an Outlook reply header
//     ("From: … Sent: … To: …", in English, German, French, Spanish, Italian,
//     Portuguese or Dutch), with the underscore rule above it;
//   - an attribution ("On … wrote:", "Am … schrieb …:", "Le … a écrit :",
//     "El … escribió:") above lines quoted with ">", unless unquoted text
//     follows them (an interleaved or bottom-posted reply keeps it all), or
//     above an unmarked copy when the line carries a date or a time;
//   - a bare "… wrote:" directly above quoted lines, under the same rule;
//   - a closing block of lines starting with ">".
//
// Signatures are left in the new text. When the new text would be empty the
// message is not cut: fresh is the whole text and quoted "".
func SplitText(text string) (fresh, quoted string) {
	text, _ = cleanText(text)
	lines := strings.Split(text, "\n")
	cut := historyStart(lines)
	if cut < 0 {
		return strings.TrimSpace(text), ""
	}
	fresh = strings.TrimSpace(strings.Join(lines[:cut], "\n"))
	if fresh == "" {
		return strings.TrimSpace(text), ""
	}
	return fresh, strings.TrimSpace(strings.Join(lines[cut:], "\n"))
}

// historyStart returns the index of the first line of quoted history, or -1.
func historyStart(lines []string) int {
	trimmed := make([]string, len(lines))
	for i, l := range lines {
		trimmed[i] = strings.TrimSpace(strings.ReplaceAll(l, "\u00a0", " "))
	}
	for i := range trimmed {
		line := trimmed[i]
		if line == "" {
			continue
		}
		if originalMessage.MatchString(line) {
			return i
		}
		if outlookHeaderAt(trimmed, i) {
			return withRuleAbove(trimmed, i)
		}
		if end, strong := attribution(trimmed, i); end >= 0 {
			switch quoteAfter(trimmed, end+1) {
			case quotedToEnd:
				return i
			case interleaved:
				return -1
			case unquoted:
				// "On … wrote:" over an unmarked copy (an HTML quote whose
				// indentation a text rendering lost) is trusted only with a
				// date or time in it: "On the ticket you wrote:" is a sentence.
				if strong && dated.MatchString(strings.Join(trimmed[i:end+1], " ")) {
					return i
				}
			}
			continue
		}
		if strings.HasPrefix(line, ">") {
			if quoteAfter(trimmed, i) == quotedToEnd {
				return i
			}
			return -1 // inline replies between quotes: nothing is only history
		}
	}
	return -1
}

// withRuleAbove moves a cut up over the "____" line Outlook draws above its header.
func withRuleAbove(lines []string, i int) int {
	for j := i - 1; j >= 0; j-- {
		switch {
		case lines[j] == "":
			continue
		case underscores.MatchString(lines[j]):
			return j
		}
		break
	}
	return i
}

// outlookHeaderAt reports an Outlook reply header starting at lines[i]:
// a From line, then within the next four non-blank lines a Sent/Date line
// and a To/Subject line.
func outlookHeaderAt(lines []string, i int) bool {
	if !outlookFrom.MatchString(lines[i]) {
		return false
	}
	sent, to := false, false
	seen := 0
	for j := i + 1; j < len(lines) && seen < 4; j++ {
		if lines[j] == "" {
			continue
		}
		seen++
		sent = sent || outlookSent.MatchString(lines[j])
		to = to || outlookTo.MatchString(lines[j])
	}
	return sent && to
}

// attribution reports an attribution line starting at lines[i], possibly
// wrapped over up to three lines: the index of its last line (or -1) and
// whether it is a dated, language-specific one.
func attribution(lines []string, i int) (end int, strong bool) {
	if len(lines[i]) > 300 {
		return -1, false
	}
	joined := lines[i]
	for j := i; j < len(lines) && j < i+3; j++ {
		if j > i {
			if lines[j] == "" || strings.HasPrefix(lines[j], ">") || len(lines[j]) > 300 {
				break
			}
			joined += " " + lines[j]
		}
		if strongAttribution.MatchString(joined) {
			return j, true
		}
		if j == i && weakAttribution.MatchString(joined) {
			return j, false
		}
	}
	return -1, false
}

// quoteShape describes the lines after an attribution.
type quoteShape int

const (
	unquoted    quoteShape = iota // no line starts with ">"
	quotedToEnd                   // quoted lines, then only blank lines
	interleaved                   // quoted lines followed by unquoted text
)

// quoteAfter looks at lines[from:]: are they a closing quote block?
func quoteAfter(lines []string, from int) quoteShape {
	seenQuote := false
	for _, l := range lines[from:] {
		switch {
		case l == "":
		case strings.HasPrefix(l, ">"):
			seenQuote = true
		case seenQuote:
			return interleaved
		default:
			return unquoted
		}
	}
	if seenQuote {
		return quotedToEnd
	}
	return unquoted
}
