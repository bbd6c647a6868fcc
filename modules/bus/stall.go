package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// stallWatch notices a group that stopped making progress while this member
// has nothing to do: some partition has messages past the group's committed
// offset, that offset has not moved for StallAfter, and this member is idle.
// Seen in the fault test: after a broker restart and a killed worker, a
// member the group still counted held partitions nobody read, for good. A
// rejoin starts a rebalance, which drops members that do not rejoin.
type stallWatch struct {
	c       *Consumer
	client  *kafka.Client
	seen    map[int]int64     // committed offset per partition at the last change
	movedAt map[int]time.Time // when it last changed
}

func newStallWatch(c *Consumer) *stallWatch {
	return &stallWatch{c: c, client: &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}},
		seen: map[int]int64{}, movedAt: map[int]time.Time{}}
}

// stalled reports a partition whose backlog has not moved for StallAfter.
func (w *stallWatch) stalled(ctx context.Context, now time.Time) (int, bool, error) {
	parts := make([]int, eventPartitionsFor(w.c.cfg.Topic))
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for p := range parts {
		parts[p] = p
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offs, err := w.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{w.c.cfg.Topic: reqs}})
	if err != nil {
		return 0, false, fmt.Errorf("list offsets: %w", err)
	}
	committed, err := w.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: w.c.cfg.Group, Topics: map[string][]int{w.c.cfg.Topic: parts}})
	if err != nil {
		return 0, false, fmt.Errorf("fetch committed offsets: %w", err)
	}
	ranges := map[int]kafka.PartitionOffsets{}
	for _, po := range offs.Topics[w.c.cfg.Topic] {
		ranges[po.Partition] = po
	}
	// A group or partition without a commit yet (the broker may answer
	// "group not found") starts before the first offset.
	done := map[int]int64{}
	for _, cp := range committed.Topics[w.c.cfg.Topic] {
		done[cp.Partition] = cp.CommittedOffset
	}
	for _, p := range parts {
		at, ok := done[p]
		if !ok {
			at = -1
		}
		if prev, ok := w.seen[p]; !ok || prev != at {
			w.seen[p], w.movedAt[p] = at, now
			continue
		}
		r := ranges[p]
		if r.LastOffset > max(at, r.FirstOffset) && now.Sub(w.movedAt[p]) >= w.c.stallAfter() {
			w.movedAt[p] = now // one rejoin per stall period
			return p, true, nil
		}
	}
	return 0, false, nil
}

// maxStallAfter caps the rejoin backoff.
const maxStallAfter = 10 * time.Minute

// stallAfter is StallAfter doubled for every rejoin since this member last
// handled a message: while another member retries through a long outage its
// partition looks stalled too, and rejoining every period would rebalance
// the whole group again and again.
func (c *Consumer) stallAfter() time.Duration {
	d := c.cfg.StallAfter << min(c.rejoins.Load(), 16)
	if d <= 0 || d > maxStallAfter {
		return max(maxStallAfter, c.cfg.StallAfter)
	}
	return d
}

// eventPartitionsFor is the partition count of the topics this package creates.
func eventPartitionsFor(topic string) int {
	if topic == TopicDeadLetter {
		return 1
	}
	return eventPartitions
}
