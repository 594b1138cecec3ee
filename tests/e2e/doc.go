// Package e2e tests Sensorcast end to end, the way devices and dashboards
// use it: real Mosquitto, Redis and NATS (with JetStream on files)
// servers, one ingest and several edge processes of the sensorcast binary
// built from this repository, devices publishing with the real
// mosquitto_pub (or, at rates a process per message cannot reach, over a
// plain MQTT connection), and dashboards on WebSocket connections,
// including ones that reconnect and resume as the SDK does.
//
// TestNothingIsLostWhenPodsAndNATSFail kills, drains and restarts parts of
// the system under 300 resuming clients and takes about 20 seconds; -short
// skips it. It and TestASlowConsumerResumesWithNothingLost print their
// delivery accounts (lost, duplicated, out of order) and reconnect times.
//
// Run it with `make test-e2e`, or from tests/:
//
//	go test -race -count=1 ./e2e/...
//
// It needs mosquitto, mosquitto_pub and redis-server (`make deps` installs
// them) and fails, never skips, without them. TestMain builds the binary
// (with -race when the tests run with it); SENSORCAST_E2E_BINARY names a
// prebuilt one to test instead. Add -v to see timings the scenarios log.
package e2e
