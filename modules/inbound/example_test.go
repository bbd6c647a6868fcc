package inbound_test

import (
	"fmt"

	"github.com/patchdesk/patchdesk/modules/inbound"
)

// A reply arrives: who wrote it, to which address, what is new in it, and
// whether a person wrote it.
func ExampleParse() {
	raw := []byte("From: =?utf-8?q?Zo=C3=AB?= <Zoe@Example.com>\r\n" +
		"To: reply+acme.42.aaaaaaaaaaaaaaaa@inbound.patchdesk.local\r\n" +
		"Subject: Re: [#42] Export fails\r\n" +
		"Message-ID: <CAF123@mail.example.com>\r\n" +
		"In-Reply-To: <n1@acme.patchdesk.local>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Works now, thanks!\r\n\r\n" +
		"On Tue, Mar 12, 2024 at 9:14 AM Acme Support wrote:\r\n" +
		"> Please try again.\r\n")
	m, err := inbound.Parse(raw)
	if err != nil {
		panic(err)
	}
	n, _ := inbound.TicketRef(m.Subject)
	fmt.Println(m.From.Name, m.From.Address)
	fmt.Println(m.Recipients[0])
	fmt.Println(m.MessageID, m.ThreadIDs())
	fmt.Println("ticket", n)
	fmt.Printf("new: %q\n", m.New.Text)
	fmt.Printf("quoted: %q\n", m.Quoted.Text)
	fmt.Println(inbound.Classify(m, "pd-1").Kind)
	// Output:
	// Zoë zoe@example.com
	// reply+acme.42.aaaaaaaaaaaaaaaa@inbound.patchdesk.local
	// CAF123@mail.example.com [n1@acme.patchdesk.local]
	// ticket 42
	// new: "Works now, thanks!"
	// quoted: "On Tue, Mar 12, 2024 at 9:14 AM Acme Support wrote:\n> Please try again."
	// regular
}

// The Reply-To of a notification about ticket 42, and what the inbound side
// makes of a reply to it, and of a guessed address.
func ExampleReplyAddress() {
	secret := []byte("a long random secret from the configuration")
	addr := inbound.ReplyAddress(secret, "acme", 42, "inbound.patchdesk.local")

	slug, kind := inbound.RecipientRoute(addr, "inbound.patchdesk.local")
	fmt.Println(slug, kind)
	slug, number, ok := inbound.ParseReplyAddress(secret, addr)
	fmt.Println(slug, number, ok)
	_, _, ok = inbound.ParseReplyAddress(secret, "reply+acme.43.aaaaaaaaaaaaaaaa@inbound.patchdesk.local")
	fmt.Println(ok)
	fmt.Println(inbound.RecipientRoute("ACME@inbound.patchdesk.local", "inbound.patchdesk.local"))
	// Output:
	// acme reply
	// acme 42 true
	// false
	// acme tenant
}
