package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Operator views of the broker: what `patchdesk doctor` and `patchdesk
// deadletter` read. None of them joins a consumer group.

// TopicStatus is one topic's layout and retention as the broker reports it.
type TopicStatus struct {
	Topic      string `json:"topic"`
	Exists     bool   `json:"exists"`
	Partitions int    `json:"partitions"`
	// WantPartitions is the partition count PatchDesk creates the topic with.
	WantPartitions int `json:"want_partitions"`
	// RetentionMS is the topic's retention.ms ("" when the broker did not say).
	RetentionMS string `json:"retention_ms"`
}

// Problem describes what is wrong with the topic, or "".
func (t TopicStatus) Problem() string {
	switch {
	case !t.Exists:
		return "missing"
	case t.Partitions < t.WantPartitions:
		return fmt.Sprintf("%d partitions, want %d", t.Partitions, t.WantPartitions)
	case t.RetentionMS == "":
		return "retention.ms unknown"
	}
	return ""
}

// Topics is the state of PatchDesk's topics (events and dead letters).
func Topics(ctx context.Context, brokers []string) ([]TopicStatus, error) {
	client, done := adminClient(brokers)
	defer done()
	want := []string{TopicEvents, TopicDeadLetter}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: want})
	if err != nil {
		return nil, fmt.Errorf("topic metadata: %w", err)
	}
	out := make([]TopicStatus, 0, len(want))
	for _, name := range want {
		st := TopicStatus{Topic: name, WantPartitions: eventPartitionsFor(name)}
		for _, t := range meta.Topics {
			if t.Name == name && t.Error == nil {
				st.Exists, st.Partitions = true, len(t.Partitions)
			}
		}
		out = append(out, st)
	}
	var resources []kafka.DescribeConfigRequestResource
	for _, t := range out {
		if t.Exists {
			resources = append(resources, kafka.DescribeConfigRequestResource{
				ResourceType: kafka.ResourceTypeTopic, ResourceName: t.Topic, ConfigNames: []string{"retention.ms"}})
		}
	}
	if len(resources) == 0 {
		return out, nil
	}
	cfgs, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: resources})
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	for _, r := range cfgs.Resources {
		for i := range out {
			if out[i].Topic != r.ResourceName || r.Error != nil {
				continue
			}
			for _, e := range r.ConfigEntries {
				if e.ConfigName == "retention.ms" {
					out[i].RetentionMS = e.ConfigValue
				}
			}
		}
	}
	return out, nil
}

// GroupLag is how many messages of topic the group has not committed yet,
// summed over the topic's partitions (a group without commits lags by the
// whole retained log).
func GroupLag(ctx context.Context, brokers []string, topic, group string) (int64, error) {
	client, done := adminClient(brokers)
	defer done()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("lag of %s: metadata: %w", group, err)
	}
	var parts []int
	for _, t := range meta.Topics {
		if t.Name == topic {
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	if len(parts) == 0 {
		return 0, fmt.Errorf("lag of %s: topic %s not found", group, topic)
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return 0, fmt.Errorf("lag of %s: list offsets: %w", group, err)
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return 0, fmt.Errorf("lag of %s: committed offsets: %w", group, err)
	}
	at := map[int]int64{}
	for _, cp := range committed.Topics[topic] {
		if cp.Error == nil && cp.CommittedOffset >= 0 {
			at[cp.Partition] = cp.CommittedOffset
		}
	}
	var lag int64
	for _, po := range offs.Topics[topic] {
		pos, ok := at[po.Partition]
		if !ok || pos < po.FirstOffset {
			pos = po.FirstOffset
		}
		lag += max(po.LastOffset-pos, 0)
	}
	return lag, nil
}

// DeadMessage is one message of the dead-letter topic with the headers the
// consumer added when it gave up (see Consumer.deadLetter).
type DeadMessage struct {
	// ID names the dead letter for `patchdesk deadletter replay --id`:
	// its partition and offset in the dead-letter topic.
	ID        string    `json:"id"`
	Group     string    `json:"group"`
	Error     string    `json:"error"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	TenantID  string    `json:"tenant_id"`
	Time      time.Time `json:"time"`
	// Origin is where the consumer read the message (topic/partition@offset).
	Origin string `json:"origin"`
	// Message is the dead letter as stored, headers included.
	Message kafka.Message `json:"-"`
}

// Original is the message as the consumer first read it: the dead-letter
// headers removed, key, value and the relay's headers kept.
func (d DeadMessage) Original() kafka.Message {
	m := kafka.Message{Topic: Header(d.Message, "x-dlq-topic"), Key: d.Message.Key, Value: d.Message.Value, Time: d.Message.Time}
	m.Partition, _ = strconv.Atoi(Header(d.Message, "x-dlq-partition"))
	m.Offset, _ = strconv.ParseInt(Header(d.Message, "x-dlq-offset"), 10, 64)
	for _, h := range d.Message.Headers {
		if len(h.Key) < 6 || h.Key[:6] != "x-dlq-" {
			m.Headers = append(m.Headers, h)
		}
	}
	return m
}

// ReadDeadLetters reads the whole retained dead-letter topic, oldest first.
func ReadDeadLetters(ctx context.Context, brokers []string) ([]DeadMessage, error) {
	client, done := adminClient(brokers)
	defer done()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{TopicDeadLetter}})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: metadata: %w", err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range meta.Topics {
		if t.Name == TopicDeadLetter {
			for _, p := range t.Partitions {
				reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
			}
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("read dead letters: topic %s not found", TopicDeadLetter)
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{TopicDeadLetter: reqs}})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: list offsets: %w", err)
	}
	var out []DeadMessage
	for _, po := range offs.Topics[TopicDeadLetter] {
		if po.Error != nil {
			return nil, fmt.Errorf("read dead letters: partition %d: %w", po.Partition, po.Error)
		}
		got, err := readPartition(ctx, brokers, po.Partition, po.FirstOffset, po.LastOffset)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// readPartition reads the dead letters of one partition in [first, last).
func readPartition(ctx context.Context, brokers []string, partition int, first, last int64) ([]DeadMessage, error) {
	if last <= first {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: TopicDeadLetter, Partition: partition,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, fmt.Errorf("read dead letters: seek: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []DeadMessage
	for {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			return nil, fmt.Errorf("read dead letters: partition %d at %d of %d: %w", partition, len(out), last-first, err)
		}
		out = append(out, DeadMessage{
			ID:    fmt.Sprintf("%d-%d", m.Partition, m.Offset),
			Group: Header(m, "x-dlq-group"), Error: Header(m, "x-dlq-error"),
			EventID: Header(m, "event_id"), EventType: Header(m, "event_type"), TenantID: Header(m, "tenant_id"),
			Time:    m.Time,
			Origin:  fmt.Sprintf("%s/%s@%s", Header(m, "x-dlq-topic"), Header(m, "x-dlq-partition"), Header(m, "x-dlq-offset")),
			Message: m,
		})
		if m.Offset >= last-1 {
			return out, nil
		}
	}
}

// adminClient is a client with a transport of its own, closed by done: an
// operator command must not keep connections to a broker it checked.
func adminClient(brokers []string) (*kafka.Client, func()) {
	tr := &kafka.Transport{DialTimeout: 3 * time.Second}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second, Transport: tr}, tr.CloseIdleConnections
}
