package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/patchdesk/patchdesk/tenancy"
)

// CountDead counts the tenant's deliveries that gave up (status dead) since
// the given time: what `patchdesk doctor` reports per tenant.
func CountDead(ctx context.Context, tx tenancy.Tx, since time.Time) (int, error) {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE status = 'dead' AND updated_at >= $1`, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead deliveries: %w", err)
	}
	return n, nil
}
