package data

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// formatFiles are the test files of the record formats.
var formatFiles = []string{"standard.jsonl", "conversational.jsonl", "implicit.jsonl", "hh.jsonl", "tokenized.jsonl", "sharegpt.json"}

// testdataLines returns every non-blank line of the JSON Lines test files.
func testdataLines(t testing.TB) [][]byte {
	t.Helper()
	var lines [][]byte
	for _, f := range formatFiles {
		if !strings.HasSuffix(f, ".jsonl") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				lines = append(lines, bytes.Clone(line))
			}
		}
	}
	return lines
}

// FuzzRecord fuzzes the JSON Lines record parser: decoding, format detection
// and normalization must never panic, and a record they accept must satisfy
// the Pair invariants.
func FuzzRecord(f *testing.F) {
	for _, line := range testdataLines(f) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := decodeObject(line)
		if err != nil {
			return
		}
		if _, err := detectFormat(rec); err != nil {
			return
		}
		for _, fm := range Formats()[1:] {
			p, err := normalize(rec, fm)
			if err != nil {
				if err.Error() == "" {
					t.Fatalf("%s: empty error message", fm)
				}
				continue
			}
			checkPair(t, p, fm)
		}
	})
}

func checkPair(t *testing.T, p Pair, fm Format) {
	t.Helper()
	if p.Format != fm {
		t.Fatalf("format %q, want %q", p.Format, fm)
	}
	if p.Tokenized {
		if len(p.PromptIDs) == 0 || len(p.ChosenIDs) == 0 || len(p.RejectedIDs) == 0 {
			t.Fatalf("%s: empty ids: %+v", fm, p)
		}
		for _, ids := range [][]int{p.PromptIDs, p.ChosenIDs, p.RejectedIDs} {
			for _, id := range ids {
				if id < 0 || id > maxTokenID {
					t.Fatalf("%s: bad id %d", fm, id)
				}
			}
		}
		return
	}
	if len(p.Prompt) == 0 {
		t.Fatalf("%s: empty prompt", fm)
	}
	for _, m := range append(p.Prompt, p.Chosen, p.Rejected) {
		if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
			t.Fatalf("%s: role %q", fm, m.Role)
		}
		if !utf8.ValidString(m.Content) {
			t.Fatalf("%s: invalid UTF-8 %q", fm, m.Content)
		}
	}
	if p.PlainText && fm != FormatStandard && fm != FormatImplicit {
		t.Fatalf("%s: PlainText set on a conversation", fm)
	}
	if fm == FormatStandard && !p.PlainText {
		t.Fatalf("%s: PlainText not set", fm)
	}
	if p.Chosen.Role != "assistant" || p.Rejected.Role != "assistant" {
		t.Fatalf("%s: response roles %q %q", fm, p.Chosen.Role, p.Rejected.Role)
	}
	if strings.TrimSpace(p.Chosen.Content) == "" || strings.TrimSpace(p.Rejected.Content) == "" || p.Chosen.Content == p.Rejected.Content {
		t.Fatalf("%s: unusable responses %q %q", fm, p.Chosen.Content, p.Rejected.Content)
	}
}

// FuzzHH fuzzes the HH transcript parser: it must never panic, and what it
// returns must render back to a transcript that parses to the same messages.
func FuzzHH(f *testing.F) {
	for _, line := range testdataLines(f) {
		rec, err := decodeObject(line)
		if err != nil {
			continue
		}
		for _, k := range []string{keyChosen, keyRejected} {
			if s, ok := rec[k].(string); ok {
				f.Add(s)
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseHH(s)
		if err != nil {
			return
		}
		if len(ms) == 0 || ms[0].Role != "user" {
			t.Fatalf("parsed %q to %q", s, ms)
		}
		var b strings.Builder
		for _, m := range ms {
			if m.Content != strings.TrimSpace(m.Content) {
				t.Fatalf("untrimmed content %q", m.Content)
			}
			if strings.Contains(m.Content, hhHuman) || strings.Contains(m.Content, hhAssistant) {
				t.Fatalf("content %q holds a marker", m.Content)
			}
			if m.Role == "user" {
				b.WriteString(hhHuman + " ")
			} else {
				b.WriteString(hhAssistant + " ")
			}
			b.WriteString(m.Content)
		}
		again, err := parseHH(b.String())
		if err != nil || len(again) != len(ms) {
			t.Fatalf("re-parse of %q: %q, %v", b.String(), again, err)
		}
		for i := range ms {
			if again[i] != ms[i] {
				t.Fatalf("re-parse of %q: message %d is %q, want %q", b.String(), i, again[i], ms[i])
			}
		}
		// The pair splitter must not panic on any pair either.
		splitHH(s, s+"\n\nAssistant: x")
	})
}

// FuzzReader fuzzes whole inputs (JSON arrays, JSON Lines, gzip): reading
// must never panic and must end with io.EOF or an error.
func FuzzReader(f *testing.F) {
	for _, file := range formatFiles {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), "fuzz", Options{MaxRecordBytes: 1 << 16})
		if err != nil {
			return
		}
		defer r.Close()
		for range len(b) + 1 {
			p, err := r.Next()
			if err != nil {
				return
			}
			checkPair(t, p, r.Format())
		}
		t.Fatal("more pairs than input bytes")
	})
}

// FuzzArrow fuzzes Arrow IPC files (stream and file format): reading must
// never panic, and must end with io.EOF or an error naming the file.
func FuzzArrow(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "arrow", "*.arrow"))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := openArrow(bytes.NewReader(b), int64(len(b)), "f.arrow")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "data: f.arrow") {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		// Arrays of nulls take no bytes, so a damaged batch may claim
		// billions of rows; a thousand are enough to exercise decoding.
		for range 1000 {
			if _, _, err := s.next(); err != nil {
				if err != io.EOF && !strings.HasPrefix(err.Error(), "data: f.arrow") {
					t.Fatalf("error %v does not name the file", err)
				}
				return
			}
		}
	})
}
