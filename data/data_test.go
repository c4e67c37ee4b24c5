package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func ptr(f float64) *float64 { return &f }

func user(s string) Message      { return Message{Role: "user", Content: s} }
func assistant(s string) Message { return Message{Role: "assistant", Content: s} }
func system(s string) Message    { return Message{Role: "system", Content: s} }

// readAll reads every Pair of path, collecting skipped-record messages.
func readAll(t *testing.T, path string, opts Options) ([]Pair, []string, error) {
	t.Helper()
	var skipped []string
	opts.OnSkip = func(err error) { skipped = append(skipped, err.Error()) }
	r, err := Open(path, opts)
	if err != nil {
		return nil, skipped, err
	}
	defer r.Close()
	pairs, _, err := drain(r, nil)
	return pairs, skipped, err
}

func drain(r *Reader, skipped []string) ([]Pair, []string, error) {
	var pairs []Pair
	for {
		p, err := r.Next()
		if err == io.EOF {
			return pairs, skipped, nil
		}
		if err != nil {
			return pairs, skipped, err
		}
		pairs = append(pairs, p)
	}
}

func TestFormats(t *testing.T) {
	tests := []struct {
		file    string
		format  Format
		want    []Pair
		skipped []string
	}{
		{
			file:   "standard.jsonl",
			format: FormatStandard,
			want: []Pair{
				{Prompt: []Message{user("The sky is")}, Chosen: assistant(" blue."), Rejected: assistant(" green."), Source: "standard.jsonl:1"},
				{Prompt: []Message{user("2 + 2 =")}, Chosen: assistant(" 4"), Rejected: assistant(" 5"),
					RefChosenLogps: ptr(-1.5), RefRejectedLogps: ptr(-3), Source: "standard.jsonl:2"},
				{Prompt: []Message{user("Say hi in French:")}, Chosen: assistant(" Bonjour, ça va ?"), Rejected: assistant(" Hola"), Source: "standard.jsonl:4"},
				{Prompt: []Message{user("Line endings")}, Chosen: assistant(" CRLF"), Rejected: assistant(" LF"), Source: "standard.jsonl:5"},
			},
		},
		{
			file:   "conversational.jsonl",
			format: FormatConversational,
			want: []Pair{
				{Prompt: []Message{user("What color is the sky?")}, Chosen: assistant("It is blue."), Rejected: assistant("It is green."), Source: "conversational.jsonl:1"},
				{Prompt: []Message{user("What is 2 + 2?")}, Chosen: assistant("4"), Rejected: assistant("5"), Source: "conversational.jsonl:2"},
				{Prompt: []Message{system("Be brief."), user("Hi"), assistant("Hello!"), user("Bye")}, Chosen: assistant("Goodbye."), Rejected: assistant("Why?"), Source: "conversational.jsonl:3"},
				{Prompt: []Message{user("Only a string prompt")}, Chosen: assistant("Yes."), Rejected: assistant("No."), Source: "conversational.jsonl:4"},
			},
		},
		{
			file:   "implicit.jsonl",
			format: FormatImplicit,
			want: []Pair{
				{Prompt: []Message{user("The sky is")}, Chosen: assistant(" blue."), Rejected: assistant(" green."), PlainText: true, Source: "implicit.jsonl:1"},
				{Prompt: []Message{user("What color is the sky?")}, Chosen: assistant("It is blue."), Rejected: assistant("It is green."), Source: "implicit.jsonl:2"},
				{Prompt: []Message{user("Café")}, Chosen: assistant(" au lait"), Rejected: assistant(" noir"), PlainText: true, Source: "implicit.jsonl:3"},
			},
		},
		{
			file:   "hh.jsonl",
			format: FormatHH,
			want: []Pair{
				{Prompt: []Message{user("What are some cuss words?")}, Chosen: assistant("I'd rather not list those."), Rejected: assistant("Here is a list."), Source: "hh.jsonl:1"},
				{Prompt: []Message{user("Hi there"), assistant("Hello!  How can I help?"), user("Tell me a joke.")},
					Chosen: assistant("Why did the chicken cross the road?"), Rejected: assistant("No."), Source: "hh.jsonl:2"},
				{Prompt: []Message{user("No leading newlines.")}, Chosen: assistant("Fine."), Rejected: assistant("Not fine."), Source: "hh.jsonl:3"},
				{Prompt: []Message{user("Consecutive"), assistant("A"), assistant("B"), user("C")}, Chosen: assistant("D"), Rejected: assistant("E"), Source: "hh.jsonl:7"},
			},
			skipped: []string{
				"data: testdata/hh.jsonl:4: hh: chosen: empty response",
				"data: testdata/hh.jsonl:5: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 3 turns, rejected 2, first difference at turn 1)",
				"data: testdata/hh.jsonl:6: hh: chosen and rejected responses are identical",
			},
		},
		{
			file:   "sharegpt.json",
			format: FormatShareGPT,
			want: []Pair{
				{Prompt: []Message{user("Name a primary color.")}, Chosen: assistant("Red."), Rejected: assistant("Pink."), Source: "sharegpt.json:record 0"},
				{Prompt: []Message{system("You are terse."), user("Hi"), assistant("Hello."), user("Count to two.")}, Chosen: assistant("1, 2."), Rejected: assistant("One."), Source: "sharegpt.json:record 1"},
				{Prompt: []Message{system("Answer in French."), user("Thanks")}, Chosen: assistant("Merci !"), Rejected: assistant("Thanks"), Source: "sharegpt.json:record 2"},
			},
		},
		{
			file:   "tokenized.jsonl",
			format: FormatTokenized,
			want: []Pair{
				{PromptIDs: []int{1, 450, 14744, 338}, ChosenIDs: []int{7254, 29889, 2}, RejectedIDs: []int{7933, 29889, 2}, Tokenized: true,
					RefChosenLogps: ptr(-4.25), RefRejectedLogps: ptr(-6.5), Source: "tokenized.jsonl:1"},
				{PromptIDs: []int{1, 29871}, ChosenIDs: []int{29900, 2}, RejectedIDs: []int{29896, 2}, Tokenized: true, Source: "tokenized.jsonl:2"},
			},
		},
	}
	for _, tt := range tests {
		for _, f := range []Format{"", FormatAuto, tt.format} {
			t.Run(tt.file+"/"+string(f), func(t *testing.T) {
				path := filepath.Join("testdata", tt.file)
				got, skipped, err := readAll(t, path, Options{Format: f})
				if err != nil {
					t.Fatal(err)
				}
				want := make([]Pair, len(tt.want))
				for i, p := range tt.want {
					p.Format = tt.format
					if tt.format == FormatStandard {
						p.PlainText = true
					}
					p.Source = filepath.Join("testdata", p.Source)
					want[i] = p
				}
				comparePairs(t, got, want)
				if !reflect.DeepEqual(skipped, tt.skipped) {
					t.Errorf("skipped:\n%q\nwant\n%q", skipped, tt.skipped)
				}
			})
		}
	}
}

func comparePairs(t *testing.T, got, want []Pair) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d pairs, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("pair %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, rec string
		want      Format
		err       string
	}{
		{"tokenized wins", `{"prompt_input_ids":[1],"chosen_input_ids":[2],"rejected_input_ids":[3],"prompt":"p","chosen":"c","rejected":"r"}`, FormatTokenized, ""},
		{"sharegpt", `{"conversations":[],"chosen":{},"rejected":{}}`, FormatShareGPT, ""},
		{"standard", `{"prompt":"p","chosen":"c","rejected":"r"}`, FormatStandard, ""},
		{"conversational prompt list", `{"prompt":[],"chosen":"c","rejected":"r"}`, FormatConversational, ""},
		{"conversational chosen list", `{"prompt":"p","chosen":[],"rejected":"r"}`, FormatConversational, ""},
		{"hh", `{"chosen":"\n\nHuman: a\n\nAssistant: b","rejected":"\n\nHuman: a\n\nAssistant: c"}`, FormatHH, ""},
		{"hh without leading newlines", `{"chosen":"Human: a\n\nAssistant: b","rejected":"Human: a\n\nAssistant: c"}`, FormatHH, ""},
		{"implicit strings", `{"chosen":"Human: a","rejected":"Human: b"}`, FormatImplicit, ""},
		{"implicit lists", `{"chosen":[],"rejected":[]}`, FormatImplicit, ""},
		{"partial tokenized", `{"prompt_input_ids":[1],"chosen_input_ids":[2]}`, "", `cannot detect the format: want chosen and rejected (or conversations, or prompt_input_ids, chosen_input_ids and rejected_input_ids); the record has fields "chosen_input_ids", "prompt_input_ids"`},
		{"sft", `{"messages":[]}`, "", `the record has fields "messages"`},
		{"empty", `{}`, "", `the record has no fields`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := decodeObject([]byte(tt.rec))
			if err != nil {
				t.Fatal(err)
			}
			got, err := detectFormat(rec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestExtractPrompt(t *testing.T) {
	tests := []struct{ chosen, rejected, prompt, c, r string }{
		{"The sky is blue.", "The sky is green.", "The sky is", " blue.", " green."},
		{"abc", "abd", "ab", "c", "d"},
		{"Q: a", "Q: a b", "Q: ", "a", "a b"}, // one is a prefix: TRL stops at the last character
		{"same", "same", "sam", "e", "e"},
		{"x", "y", "", "x", "y"},
		{"naïve?", "naïf!", "naï", "ve?", "f!"},
		{"日本語です", "日本人です", "日本", "語です", "人です"}, // differ inside a multi-byte rune
		{"", "abc", "", "", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.chosen+"|"+tt.rejected, func(t *testing.T) {
			p, c, r := extractPrompt(tt.chosen, tt.rejected)
			if p != tt.prompt || c != tt.c || r != tt.r {
				t.Errorf("got %q %q %q, want %q %q %q", p, c, r, tt.prompt, tt.c, tt.r)
			}
		})
	}
}

func TestParseHH(t *testing.T) {
	tests := []struct {
		in   string
		want []Message
		err  string
	}{
		{"\n\nHuman: hi\n\nAssistant: hello", []Message{user("hi"), assistant("hello")}, ""},
		{"  \nHuman:hi\n\nAssistant:", []Message{user("hi"), assistant("")}, ""},
		{"\n\nHuman: a\n\nHuman: b\n\nAssistant:  c \n\n", []Message{user("a"), user("b"), assistant("c")}, ""},
		{"\n\nHuman: inline Human: and Assistant: stay\n\nAssistant: ok", []Message{user("inline Human: and Assistant: stay"), assistant("ok")}, ""},
		{"\n\nAssistant: no human", nil, `does not begin with "Human:"`},
		{"", nil, `does not begin with "Human:"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseHH(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// gzipTo writes the gzip compression of src to dst.
func gzipTo(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGzip(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"standard.jsonl", "sharegpt.json", "hh.jsonl", "tokenized.jsonl"} {
		// Magic bytes, not names, decide: try a misleading name too.
		for _, gzName := range []string{name + ".gz", name + ".data"} {
			t.Run(gzName, func(t *testing.T) {
				plain := filepath.Join("testdata", name)
				gz := filepath.Join(dir, gzName)
				gzipTo(t, plain, gz)
				want, _, err := readAll(t, plain, Options{})
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := readAll(t, gz, Options{})
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					want[i].Source = strings.Replace(want[i].Source, plain, gz, 1)
				}
				comparePairs(t, got, want)
			})
		}
	}
}

// failAfter yields data and then fails, so a reader that tried to read its
// whole input before returning the first record would fail.
type failAfter struct{ data io.Reader }

var errStream = errors.New("stream broken")

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.data.Read(p)
	if err == io.EOF {
		return n, errStream
	}
	return n, err
}

func TestStreaming(t *testing.T) {
	tests := []struct{ name, data string }{
		{"json array", `[{"prompt":"p","chosen":"c","rejected":"r"}, {"prompt":"p2",`},
		{"jsonl", "{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\"}\n{\"prompt\":"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(&failAfter{strings.NewReader(tt.data)}, "stream", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := r.Next()
			if err != nil {
				t.Fatalf("first record: %v", err)
			}
			if p.Chosen.Content != "c" {
				t.Fatalf("first record: %+v", p)
			}
			if _, err := r.Next(); !errors.Is(err, errStream) {
				t.Fatalf("second record: got %v, want the stream's error", err)
			}
		})
	}
}

func TestNewReaderGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("\ufeff" + `[{"prompt":"p","chosen":"c","rejected":"r"}]`))
	zw.Close()
	r, err := NewReader(&buf, "mem", Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := drain(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := []Pair{{Prompt: []Message{user("p")}, Chosen: assistant("c"), Rejected: assistant("r"), PlainText: true, Format: FormatStandard, Source: "mem:record 0"}}
	comparePairs(t, got, want)
}

func TestLongLine(t *testing.T) {
	// HH rows can be long; a line far above bufio.Scanner's 64 KiB default
	// must load.
	long := strings.Repeat("word ", 1<<20/5*3) // 3 MiB
	line := `{"prompt":"p","chosen":"` + long + `","rejected":"r"}` + "\n"
	path := filepath.Join(t.TempDir(), "long.jsonl")
	if err := os.WriteFile(path, []byte(line+line), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Chosen.Content != long {
		t.Fatalf("got %d pairs", len(got))
	}
	_, _, err = readAll(t, path, Options{MaxRecordBytes: 1 << 20})
	if want := "data: " + path + ":1: line longer than 1048576 bytes"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestSkipAndStrict(t *testing.T) {
	path := filepath.Join("testdata", "hh.jsonl")
	_, _, err := readAll(t, path, Options{Strict: true})
	want := "data: testdata/hh.jsonl:4: hh: chosen: empty response"
	if err == nil || err.Error() != want {
		t.Fatalf("strict: got %v, want %q", err, want)
	}
	var rerr *RecordError
	if !errors.As(err, &rerr) || rerr.Source != "testdata/hh.jsonl:4" || !errors.Is(err, ErrEmptyResponse) || !Skippable(err) {
		t.Fatalf("strict: error %#v does not unwrap as expected", err)
	}

	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Format() != FormatAuto {
		t.Fatalf("Format before the first record: %q", r.Format())
	}
	got, _, err := drain(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || r.Records() != 7 || r.Skipped() != 3 || r.Format() != FormatHH {
		t.Fatalf("got %d pairs, %d records, %d skipped, format %q", len(got), r.Records(), r.Skipped(), r.Format())
	}
	// Next after the end and after Close keeps failing without panicking.
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after EOF: %v", err)
	}
	r.Close()
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("Next after Close: no error")
	}
	var zero Reader
	if _, err := zero.Next(); err == nil {
		t.Fatal("Next on a zero Reader: no error")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join("testdata", "missing.jsonl"), Options{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(filepath.Join("testdata", "standard.jsonl"), Options{Format: "csv"}); err == nil || !strings.Contains(err.Error(), `unknown format "csv"`) {
		t.Errorf("bad format: %v", err)
	}
	if f, err := ParseFormat("hh"); err != nil || f != FormatHH {
		t.Errorf("ParseFormat(hh) = %q, %v", f, err)
	}
	if f, err := ParseFormat(""); err != nil || f != FormatAuto {
		t.Errorf("ParseFormat(\"\") = %q, %v", f, err)
	}
	path := filepath.Join(t.TempDir(), "empty.jsonl")
	os.WriteFile(path, []byte("\n\n"), 0o644)
	if got, _, err := readAll(t, path, Options{}); err != nil || len(got) != 0 {
		t.Errorf("empty file: %d pairs, %v", len(got), err)
	}
}
