package main

// sensorcast devices import: a CSV file of devices, checked locally, then
// written in batches with BatchUpsertDevices.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/room"
)

// importBatchSize is how many devices go in one BatchUpsertDevices call:
// a fifth of the API's limit, so a batch stays a few MiB and a failed one
// is cheap to retry.
const importBatchSize = 10_000

// maxReportedRowErrors caps the invalid rows listed: enough to start
// fixing the file.
const maxReportedRowErrors = 20

// csvColumns are the columns an import file may have; id is required.
var csvColumns = []string{"id", "name", "type", "groups", "labels", "attributes", "enabled"}

// csvRow is one device of an import file and the line it starts on.
type csvRow struct {
	line   int
	device *registryv1.Device
}

func devicesImport(ctx context.Context, cmd *cliCommand, args []string) error {
	var file string
	cmd.fs.StringVar(&file, "csv", "", "the CSV `file` to import ('-': stdin); header row of "+strings.Join(csvColumns, ", ")+
		"; groups are ';'-separated, labels and attributes 'k=v;k=v', enabled true or false (default true)")
	if _, err := cmd.parse(args, 0); err != nil {
		return err
	}
	if file == "" {
		return cmd.usageErrorf("--csv FILE is required ('-' reads stdin)")
	}
	in := cmd.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd.name, err)
		}
		defer f.Close()
		in = f
	}
	rows, err := parseDeviceCSV(in)
	if err != nil {
		return fmt.Errorf("%s %s: %w", cmd.name, file, err)
	}
	client, closeConn, err := cmd.connect()
	if err != nil {
		return err
	}
	defer closeConn()

	// Progress is the output in table mode; with --output json it goes to
	// stderr and stdout gets the totals.
	progress := cmd.stdout
	if cmd.output == "json" {
		progress = cmd.stderr
	}
	batches := (len(rows) + importBatchSize - 1) / importBatchSize
	var total registryv1.BatchUpsertDevicesResponse
	for b := range batches {
		batch := rows[b*importBatchSize : min((b+1)*importBatchSize, len(rows))]
		req := &registryv1.BatchUpsertDevicesRequest{Devices: make([]*registryv1.Device, len(batch))}
		for i, r := range batch {
			req.Devices[i] = r.device
		}
		callCtx, cancel := cmd.call(ctx)
		resp, err := client.BatchUpsertDevices(callCtx, req)
		cancel()
		first, last := batch[0].line, batch[len(batch)-1].line
		if err != nil {
			failed := newRPCError(fmt.Sprintf("%s: batch %d of %d (lines %d-%d) was refused, and nothing in it was imported", cmd.name, b+1, batches, first, last),
				err, batchLines(batch))
			return fmt.Errorf("%w\nlines %d-%d (%d devices) were not imported; %d devices from earlier batches were (%d created, %d updated).\nFix the file and import it again: devices that exist are replaced, not duplicated",
				failed, first, rows[len(rows)-1].line, len(rows)-b*importBatchSize, b*importBatchSize, total.CreatedCount, total.UpdatedCount)
		}
		total.CreatedCount += resp.GetCreatedCount()
		total.UpdatedCount += resp.GetUpdatedCount()
		fmt.Fprintf(progress, "batch %d of %d (lines %d-%d): %d created, %d updated\n", b+1, batches, first, last, resp.GetCreatedCount(), resp.GetUpdatedCount())
	}
	if cmd.output == "json" {
		return printJSON(cmd.stdout, &total)
	}
	fmt.Fprintf(cmd.stdout, "imported %d devices: %d created, %d updated\n", len(rows), total.CreatedCount, total.UpdatedCount)
	return nil
}

// batchIndex matches the device a batch error is about: "devices[17].labels".
var batchIndex = regexp.MustCompile(`^devices\[(\d+)\]\.?`)

// batchLines rewrites a batch error's field paths ("devices[17].labels")
// to the file's lines ("line 10019: labels").
func batchLines(batch []csvRow) func(string) string {
	return func(field string) string {
		m := batchIndex.FindStringSubmatch(field)
		if m == nil {
			return field
		}
		i, err := strconv.Atoi(m[1])
		if err != nil || i >= len(batch) {
			return field
		}
		rest := field[len(m[0]):]
		if rest == "" {
			return fmt.Sprintf("line %d", batch[i].line)
		}
		return fmt.Sprintf("line %d: %s", batch[i].line, rest)
	}
}

// parseDeviceCSV reads an import file: a header row naming the columns (in
// any order; id required), then one device a row. It checks what can be
// checked without the registry and reports every bad row (up to
// maxReportedRowErrors) by line; nothing is imported from a file with a
// bad row.
func parseDeviceCSV(in io.Reader) ([]csvRow, error) {
	r := csv.NewReader(in)
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file: want a header row (" + strings.Join(csvColumns, ",") + ") and a row per device")
	}
	if err != nil {
		return nil, err
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) // spreadsheets may start with a BOM
		switch _, dup := col[h]; {
		case !slices.Contains(csvColumns, h):
			return nil, fmt.Errorf("line 1: unknown column %q; want %s", header[i], strings.Join(csvColumns, ", "))
		case dup:
			return nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		col[h] = i
	}
	if _, ok := col["id"]; !ok {
		return nil, errors.New("line 1: no id column; the header row must name the columns (" + strings.Join(csvColumns, ",") + ")")
	}
	cell := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}

	var (
		rows    []csvRow
		bad     []string
		badRows int
		seen    = map[string]int{} // id -> line
	)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A broken quote or a short row: the lines after it cannot be
			// trusted to be split right.
			return nil, err
		}
		line, _ := r.FieldPos(0)
		d, err := csvDevice(cell, rec)
		if err == nil {
			if prev, dup := seen[d.Id]; dup {
				err = fmt.Errorf("id %q is also on line %d", d.Id, prev)
			} else {
				seen[d.Id] = line
			}
		}
		if err != nil {
			if badRows++; badRows <= maxReportedRowErrors {
				bad = append(bad, fmt.Sprintf("line %d: %v", line, err))
			}
			continue
		}
		rows = append(rows, csvRow{line: line, device: d})
	}
	if badRows > 0 {
		if badRows > maxReportedRowErrors {
			bad = append(bad, fmt.Sprintf("... and %d more", badRows-maxReportedRowErrors))
		}
		return nil, fmt.Errorf("%d invalid rows, nothing imported:\n  %s", badRows, strings.Join(bad, "\n  "))
	}
	if len(rows) == 0 {
		return nil, errors.New("no devices: the file has a header row only")
	}
	return rows, nil
}

// csvDevice builds the device of one row.
func csvDevice(cell func(rec []string, name string) string, rec []string) (*registryv1.Device, error) {
	d := &registryv1.Device{
		Id:          cell(rec, "id"),
		DisplayName: cell(rec, "name"),
		Type:        cell(rec, "type"),
		Enabled:     true,
	}
	if !room.ValidID(d.Id) {
		if d.Id == "" {
			return nil, errors.New("id is empty")
		}
		return nil, fmt.Errorf("id %q: want 1-%d characters of A-Z a-z 0-9 _ - :", d.Id, room.MaxIDLen)
	}
	for _, g := range strings.Split(cell(rec, "groups"), ";") {
		if g = strings.TrimSpace(g); g != "" {
			d.Groups = append(d.Groups, g)
		}
	}
	var err error
	if d.Labels, err = parsePairs(cell(rec, "labels")); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if d.Attributes, err = parsePairs(cell(rec, "attributes")); err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	if v := cell(rec, "enabled"); v != "" {
		if d.Enabled, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("enabled %q: want true or false", v)
		}
	}
	return d, nil
}

// parsePairs parses "k=v;k=v" (empty: none).
func parsePairs(s string) (map[string]string, error) {
	m := mapFlag{}
	for _, p := range strings.Split(s, ";") {
		if err := m.Set(strings.TrimSpace(p)); err != nil {
			return nil, err
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
