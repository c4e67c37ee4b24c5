package data

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures in testdata/arrow were written by Apache Arrow's Go
// implementation (scripts/goldens/arrowgen), each beside a JSON Lines file
// of the same rows: relupo must read the two the same.
func TestArrowMatchesJSONL(t *testing.T) {
	for _, tc := range []struct {
		name, twin string
		format     Format
	}{
		{"standard", "standard", FormatStandard},                   // two batches; string, large string, float, timestamp columns; nulls
		{"conversational", "conversational", FormatConversational}, // lists of {content, role} structs; a null list in an unread column
		{"tokenized", "tokenized", FormatTokenized},                // the file format; int32, int64, uint16 lists, 64-bit offsets; float32 log-probs
		{"sharegpt", "sharegpt", FormatShareGPT},                   // struct columns
		{"lz4", "compressed", FormatStandard},                      // an LZ4-compressed stream (to_feather's default); short buffers stored raw
		{"zstd", "compressed", FormatStandard},                     // a ZSTD-compressed file
		{"views", "views", FormatStandard},                         // string and binary views (polars' default), several data buffers
		{"dictunread", "dictunread", FormatStandard},               // a dictionary-encoded column no format reads (the file format)
		{"dictunread-stream", "dictunread", FormatStandard},        // the same in a stream, its dictionary batch skipped
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join("testdata", "arrow", tc.name)
			want, _, err := readAll(t, filepath.Join("testdata", "arrow", tc.twin+".jsonl"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := readAll(t, base+".arrow", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 || got[0].Format != tc.format {
				t.Fatalf("read %d pairs as %v, want %v", len(got), got, tc.format)
			}
			for i := range want {
				want[i].Source = fmt.Sprintf("%s.arrow:row %d", base, i)
			}
			comparePairs(t, got, want)
		})
	}
}

func TestArrowRefused(t *testing.T) {
	dir := t.TempDir()
	std, err := os.ReadFile(filepath.Join("testdata", "arrow", "standard.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join("testdata", "arrow", "dictionary.arrow"), `column "prompt" is dictionary-encoded, which is not supported`},
		{write("empty-stream.arrow", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}), "the stream does not start with a schema"},
		{write("truncated.arrow", std[:len(std)/2]), "invalid Arrow IPC file"},
		{write("file-truncated.arrow", []byte("ARROW1\x00\x00 and then nothing of a footer")), "the file does not end with ARROW1 (truncated?)"},
		{write("legacy.arrow", append([]byte{0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0}, make([]byte, 16)...)), "invalid Arrow IPC file (at byte 0): damaged metadata"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			_, _, err := readAll(t, tc.path, Options{})
			if err == nil || !strings.HasPrefix(err.Error(), "data: "+tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s and saying %q", err, tc.path, tc.want)
			}
		})
	}
}

// readArrowBytes reads every record of an Arrow IPC file held in b, as
// Open would; it returns the records read and the error that ended them.
func readArrowBytes(b []byte) (int, error) {
	s, err := openArrow(bytes.NewReader(b), int64(len(b)), "f.arrow")
	if err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		if _, _, err := s.next(); err != nil {
			return n, err
		}
	}
}

// Every prefix and thousands of byte flips of each fixture: an error that
// names the file (or, for a flip in the text itself, records), never a
// panic. FuzzArrow goes further.
func TestArrowDamaged(t *testing.T) {
	names, _ := filepath.Glob(filepath.Join("testdata", "arrow", "*.arrow"))
	r := rand.New(rand.NewPCG(1, 2))
	for _, path := range names {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, c []byte) {
			t.Helper()
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s, %s: panic %v", path, what, p)
				}
			}()
			if _, err := readArrowBytes(c); err != io.EOF && (err == nil || !strings.HasPrefix(err.Error(), "data: f.arrow")) {
				t.Fatalf("%s, %s: error %v does not name the file", path, what, err)
			}
		}
		for n := range len(b) {
			check(fmt.Sprint("cut at ", n), b[:n])
		}
		for range 3000 {
			c := bytes.Clone(b)
			i := r.IntN(len(c))
			c[i] ^= byte(1 + r.IntN(255))
			check(fmt.Sprint("flip at ", i), c)
		}
	}
}

// A datasets save_to_disk folder reads as one data set: state.json's files
// in its order, a fraction counting rows across them.
func TestSavedDatasetFolder(t *testing.T) {
	std, err := os.ReadFile(filepath.Join("testdata", "arrow", "standard.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := os.ReadFile(filepath.Join("testdata", "arrow", "conversational.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"data-00000-of-00002.arrow": std,
		"data-00001-of-00002.arrow": std,
		"state.json":                []byte(`{"_data_files": [{"filename": "data-00000-of-00002.arrow"}, {"filename": "data-00001-of-00002.arrow"}], "_split": "train"}`),
		"dataset_info.json":         []byte(`{}`),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := readAll(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Each file's third row has an empty rejected response and is skipped.
	if len(got) != 4 || got[0].Format != FormatStandard {
		t.Fatalf("read %d pairs (%v), want rows 0 and 1 of each of the two files", len(got), got)
	}
	for i, p := range got {
		want := fmt.Sprintf("%s:row %d", filepath.Join(dir, fmt.Sprintf("data-0000%d-of-00002.arrow", i/2)), i%2)
		if p.Source != want {
			t.Errorf("pair %d from %s, want %s", i, p.Source, want)
		}
	}
	half, err := LoadAll(t.Context(), []Source{{Path: dir, Fraction: 0.5}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	comparePairs(t, half, got[:2]) // rows 0-2 of 6: the first file's, its row 2 skipped

	// The format is the data set's: a second file of another format is an
	// error naming its record, as a file changing format midway is.
	if err := os.WriteFile(filepath.Join(dir, "data-00001-of-00002.arrow"), conv, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), "data-00001-of-00002.arrow:row 0") {
		t.Errorf("got %v, want an error naming the second file's first row", err)
	}

	for _, tc := range []struct{ state, want string }{
		{`{"_data_files": [{"filename": "../standard.arrow"}]}`, `data file "../standard.arrow" is not a plain file name inside the folder`},
		{`{"_data_files": []}`, "names no data files (_data_files)"},
		{`{"_data_files": [`, "state.json: unexpected end of JSON input"},
		{`{"_data_files": [{"filename": "missing.arrow"}]}`, "missing.arrow: no such file"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(tc.state), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readAll(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("state.json %s: got %v, want an error containing %q", tc.state, err, tc.want)
		}
	}
}

// The compressed fixtures are really compressed: reading them inflates
// bytes (Arrow stores a buffer raw when compressing does not pay).
func TestArrowInflates(t *testing.T) {
	for _, name := range []string{"lz4", "zstd"} {
		b, err := os.ReadFile(filepath.Join("testdata", "arrow", name+".arrow"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := openArrow(bytes.NewReader(b), int64(len(b)), name)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, _, err := s.next(); err != nil {
				break
			}
		}
		if s.inflated < int64(len(b)) {
			t.Errorf("%s: %d bytes inflated from a %d-byte file", name, s.inflated, len(b))
		}
	}
}
