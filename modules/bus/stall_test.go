package bus

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestStallWatch: a partition with messages past the group's committed
// offset counts as stalled only once that offset has not moved for
// StallAfter, and is reported once per period; empty partitions never are.
func TestStallWatch(t *testing.T) {
	t.Parallel()
	b, err := StartBroker("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	brokers := []string{b.Addr()}
	if err := EnsureTopics(ctx, brokers); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(brokers, TopicEvents)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("tenant:ticket"), Value: []byte("waiting")}); err != nil {
		t.Fatal(err)
	}
	c := &Consumer{cfg: ConsumerConfig{Brokers: brokers, Group: "stall-test", Topic: TopicEvents, StallAfter: time.Minute}}
	watch := newStallWatch(c)
	t0 := time.Now()
	for _, step := range []struct {
		after time.Duration
		want  bool
	}{
		{0, false},                // first look: nothing to compare with
		{30 * time.Second, false}, // not long enough
		{61 * time.Second, true},  // a minute without progress
		{90 * time.Second, false}, // reported: the next report waits a period
		{122 * time.Second, true}, // still stuck
	} {
		_, stalled, err := watch.stalled(ctx, t0.Add(step.after))
		if err != nil {
			t.Fatal(err)
		}
		if stalled != step.want {
			t.Fatalf("after %s: stalled %v, want %v", step.after, stalled, step.want)
		}
	}
}

// TestStallAfterBacksOff: every rejoin without progress doubles the period
// before the next (capped), and handling a message resets it, so a member
// idle behind another's long retry does not rebalance its group every period.
func TestStallAfterBacksOff(t *testing.T) {
	t.Parallel()
	c := &Consumer{cfg: ConsumerConfig{StallAfter: 30 * time.Second}}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, maxStallAfter, maxStallAfter}
	for i, w := range want {
		if got := c.stallAfter(); got != w {
			t.Fatalf("after %d rejoins: stallAfter = %s, want %s", i, got, w)
		}
		c.rejoins.Add(1)
	}
	c.rejoins.Add(40) // no overflow into a short or negative period
	if got := c.stallAfter(); got != maxStallAfter {
		t.Fatalf("after many rejoins: %s", got)
	}
	c.rejoins.Store(0)
	if got := c.stallAfter(); got != 30*time.Second {
		t.Fatalf("after progress: %s", got)
	}
}
