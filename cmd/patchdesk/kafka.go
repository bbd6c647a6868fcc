package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/patchdesk/patchdesk/modules/bus"
)

// kafka runs the embedded Kafka-protocol broker on its own, for development
// and multi-process setups (several patchdesk processes sharing one broker).
func kafka(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address")
	dir := fs.String("data-dir", "./data/kafka", "where the broker keeps its log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dur, err := loadDurability()
	if err != nil {
		return err
	}
	b, err := bus.StartBroker(*addr, *dir)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := bus.EnsureTopicsWith(ctx, []string{b.Addr()}, dur.Retention); err != nil {
		return err
	}
	fmt.Printf("Kafka-protocol broker listening on %s (data in %s)\n", b.Addr(), *dir)
	<-ctx.Done()
	return nil
}
