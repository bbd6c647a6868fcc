// Package inbound is the pure core of the email channel: it turns a raw
// RFC 5322 message into a Message whose every string is valid UTF-8 without
// NUL (Parse), cuts the quoted history from a reply (SplitText, SplitHTML),
// recognises machine mail (Classify: our own loop header, delivery status
// notifications, auto-replies, bulk mail), builds and verifies the signed
// reply addresses PatchDesk puts in Reply-To (ReplyAddress,
// ParseReplyAddress), routes a recipient to a tenant (RecipientRoute) and
// finds a "[#123]" ticket reference in a subject (TicketRef).
//
// Nothing here touches a database, the network or the clock: the SMTP
// listener, the HTTP endpoint, storage and threading are built on top of it
// and decide what to do with what it reports. Parse never fails on a
// malformed message it can read headers from: what it had to repair is
// listed in Message.Warnings, so the pipeline keeps the message and the
// reason instead of dropping it. Parse fails only with errs.ErrInvalid.
//
// # Decisions
//
//   - Charsets: only the declared charset is used (enmime's detection off).
//     Text parts with no charset or an ASCII one are read as UTF-8, the
//     likeliest encoding of unlabelled 8-bit mail today; bytes that are not
//     UTF-8 become U+FFFD. Labels are looked up as browsers do (WHATWG:
//     iso-8859-1 is windows-1252, gb2312 is GBK), then in the IANA registry.
//   - HTML keeps structure, links (http, https, mailto; nofollow, noreferrer,
//     new tab) and images of the message itself (cid:, data: PNG/JPEG/GIF/
//     WebP). Remote images are replaced by their alt text in brackets: no
//     tracking pixel fires and nothing third-party loads when an agent opens
//     a ticket. Class, id and style are dropped so mail cannot meet the
//     application's CSS or scripts.
//   - The idempotency key is the hex SHA-256 of the normalised Message-ID
//     (brackets and folding whitespace removed, case kept), or of the raw
//     bytes when there is none; Message.KeyFromRaw says which. A message
//     without Message-ID relayed with different headers (SMTP and webhook)
//     therefore gets two keys: the sender gave nothing better to go on.
//   - Quoted history is cut only where it is unambiguous: a closing quote
//     block or an attribution/Outlook header above the old message. An
//     interleaved or bottom-posted reply, a message whose new part would be
//     empty, and a forwarded message (Fwd:, FW:, WG:, TR:, RV:) are kept
//     whole. Signatures are never touched.
//   - Reply addresses carry 80 bits of HMAC-SHA256 in lowercase base32, so
//     they survive mail systems that lowercase addresses; only the exact form
//     verifies. The secret should be a long-lived installation secret, not
//     the rotatable per-tenant inbound secret: rotating it orphans every
//     reply address already sent.
//   - Classification ignores X-MS-Exchange-Generated-Message-Source and
//     subject wording (see Classify).
//
// # Limits
//
// A message with more than maxParts MIME delimiter lines is read as plain
// text (enmime spends a buffer per part); HTML nested deeper than 512
// elements is sanitised whole and not cut; Message-IDs are kept to 512
// bytes, References to 50, warnings to 50, the subject to 998 bytes.
package inbound
