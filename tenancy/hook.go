package tenancy

import "context"

// CommitHook runs as the last statement of a scoped transaction, just before
// it commits; its error rolls the transaction back instead. It lets request
// middleware record something atomically with whatever the request's
// services write (an idempotency key with the effect it stands for) without
// every service having to pass it along.
type CommitHook func(ctx context.Context, tx Tx) error

type commitHookKey struct{}

// WithCommitHook returns a context whose scoped transactions (Registry.Tx
// called with it or a context derived from it) run hook before committing.
// A hook already in ctx is replaced. The hook runs on every attempt of a
// retried transaction, for any tenant: it must check tx.Tenant() itself.
func WithCommitHook(ctx context.Context, hook CommitHook) context.Context {
	return context.WithValue(ctx, commitHookKey{}, hook)
}

// commitHookFrom returns the hook of ctx, or nil.
func commitHookFrom(ctx context.Context) CommitHook {
	h, _ := ctx.Value(commitHookKey{}).(CommitHook)
	return h
}
