package main

import (
	"fmt"
	"os"
	"time"

	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/modules/notify"
)

// durability is how long side-effect machinery keeps and waits for things,
// read from the environment only (operators rarely touch it; tests shorten it):
//
//	PATCHDESK_EVENT_RETENTION          events topic retention (default 168h)
//	PATCHDESK_DEADLETTER_RETENTION     dead-letter topic retention (default 720h)
//	PATCHDESK_JOB_RESCUE_AFTER         a job running this long is retried (default 5m)
//	PATCHDESK_DELIVERY_TIMEOUT         bound of one delivery attempt (default 1m)
//	PATCHDESK_DELIVERY_RECONCILE_EVERY scan for deliveries that lost their job (default 20s)
type durability struct {
	Retention      bus.Retention
	RescueAfter    time.Duration
	AttemptTimeout time.Duration
	ReconcileEvery time.Duration
}

// loadDurability reads the settings; zero values leave the modules' defaults.
func loadDurability() (durability, error) {
	var d durability
	for name, dst := range map[string]*time.Duration{
		"PATCHDESK_EVENT_RETENTION":          &d.Retention.Events,
		"PATCHDESK_DEADLETTER_RETENTION":     &d.Retention.DeadLetter,
		"PATCHDESK_JOB_RESCUE_AFTER":         &d.RescueAfter,
		"PATCHDESK_DELIVERY_TIMEOUT":         &d.AttemptTimeout,
		"PATCHDESK_DELIVERY_RECONCILE_EVERY": &d.ReconcileEvery,
	} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			return d, fmt.Errorf("%s must be a positive duration like 168h, not %q", name, v)
		}
		*dst = dur
	}
	if d.RescueAfter > 0 && d.AttemptTimeout >= d.RescueAfter {
		return d, fmt.Errorf("PATCHDESK_DELIVERY_TIMEOUT (%s) must be below PATCHDESK_JOB_RESCUE_AFTER (%s), or a slow attempt runs twice",
			d.AttemptTimeout, d.RescueAfter)
	}
	return d, nil
}

// apply sets the job queue and notify settings.
func (d durability) apply(j *jobs.Config, n *notify.Config) {
	j.RescueAfter = d.RescueAfter
	n.AttemptTimeout, n.ReconcileEvery = d.AttemptTimeout, d.ReconcileEvery
}
