package notify

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

// TestSpoolIsPerTenantAndRemovable (issue 9.8): the mail spool keeps each
// tenant's messages apart, and RemoveSpool deletes one tenant's only.
func TestSpoolIsPerTenantAndRemovable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, err := NewMailer("", dir)
	if err != nil {
		t.Fatal(err)
	}
	gone, kept := uuid.New(), uuid.New()
	for _, tenant := range []uuid.UUID{gone, kept} {
		if err := m.Send(context.Background(), tenant, uuid.New(), "a@x.test", "b@x.test", []byte("Subject: hi\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveSpool(dir, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, gone.String())); !os.IsNotExist(err) {
		t.Fatalf("deleted tenant's spool still there: %v", err)
	}
	left, err := filepath.Glob(filepath.Join(dir, kept.String(), "*.eml"))
	if err != nil || len(left) != 1 {
		t.Fatalf("other tenant's spool: %v %v", left, err)
	}
	if err := RemoveSpool(dir, gone); err != nil {
		t.Fatalf("removing a missing spool: %v", err)
	}
}
