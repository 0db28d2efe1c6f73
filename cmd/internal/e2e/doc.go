// Package e2e holds end-to-end scenario tests that run an edge (line
// engine, API, outbox) and central (broker, ingest, store, alerts, web)
// together against the device simulators on real sockets. edge and central
// never import each other; these tests are the one place that composes both
// outside the demo.
package e2e
