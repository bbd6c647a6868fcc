package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/bus"
)

// topicRetention reads a topic's retention.ms from the broker.
func topicRetention(t *testing.T, brokers []string, topic string) string {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := client.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"retention.ms"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Resources {
		for _, c := range r.ConfigEntries {
			if c.ConfigName == "retention.ms" {
				return c.ConfigValue
			}
		}
	}
	t.Fatalf("no retention.ms on %s", topic)
	return ""
}

// TestTopicRetention (issue 9.8): topics get the configured retention (the
// defaults, 7 and 30 days, unless set), also when they already exist, and
// the embedded broker drops events older than it.
func TestTopicRetention(t *testing.T) {
	t.Parallel()
	broker, err := bus.StartBroker("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, brokers); err != nil {
		t.Fatal(err)
	}
	if got := topicRetention(t, brokers, bus.TopicEvents); got != "604800000" {
		t.Errorf("events retention.ms %s, want 7 days", got)
	}
	if got := topicRetention(t, brokers, bus.TopicDeadLetter); got != "2592000000" {
		t.Errorf("dead-letter retention.ms %s, want 30 days", got)
	}
	// Existing topics take a new setting.
	if err := bus.EnsureTopicsWith(ctx, brokers, bus.Retention{Events: time.Millisecond, DeadLetter: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := topicRetention(t, brokers, bus.TopicDeadLetter); got != "3600000" {
		t.Errorf("dead-letter retention.ms %s after the change, want 1h", got)
	}
	w := bus.NewWriter(brokers, bus.TopicEvents)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("tenant:ticket"), Value: []byte("old news")}); err != nil {
		t.Fatal(err)
	}
	// Find the partition that holds it, then wait for the sweep to drop it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		broker.ApplyRetention()
		dropped := false
		for p := range 6 {
			conn, err := kafka.DialLeader(ctx, "tcp", broker.Addr(), bus.TopicEvents, p)
			if err != nil {
				t.Fatal(err)
			}
			first, last, err := conn.ReadOffsets()
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			if last == 1 && first == 1 {
				dropped = true
			}
		}
		if dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired event was not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
