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
// reason instead of dropping it.
package inbound
