// Command arrowgen writes the Arrow IPC fixtures of relupo's data tests
// (data/testdata/arrow) with Apache Arrow's own Go implementation, each
// beside the JSON Lines file that holds the same rows, so the tests can
// check that relupo reads both the same. It is a module of its own so that
// relupo does not depend on arrow-go.
//
// Run from the repository root:
//
//	(cd scripts/goldens/arrowgen && go run . ../../../data/testdata/arrow)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var mem = memory.NewGoAllocator()

// datasets' schema metadata, as save_to_disk writes it (abridged).
var hfMeta = arrow.NewMetadata([]string{"huggingface"}, []string{`{"info": {"features": {}}}`})

func main() {
	out := os.Args[1]
	must(os.MkdirAll(out, 0o755))
	standard(out)
	conversational(out)
	tokenized(out)
	sharegpt(out)
	dictionary(out)
	compressed(out)
	views(out)
	dictionaryUnread(out)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func writeJSONL(path string, rows []map[string]any) {
	f, err := os.Create(path)
	must(err)
	defer f.Close()
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		must(enc.Encode(r))
	}
}

// write writes the batches as an Arrow stream, or in the file format.
func write(path string, schema *arrow.Schema, batches []arrow.Record, fileFormat bool, opts ...ipc.Option) {
	f, err := os.Create(path)
	must(err)
	defer f.Close()
	opts = append(opts, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	var w interface {
		Write(arrow.Record) error
		Close() error
	}
	if fileFormat {
		w, err = ipc.NewFileWriter(f, opts...)
		must(err)
	} else {
		w = ipc.NewWriter(f, opts...)
	}
	for _, b := range batches {
		must(w.Write(b))
	}
	must(w.Close())
}

// standard: TRL's standard format with extra columns of other types (a
// timestamp, a nullable float, a large string), in two batches.
func standard(out string) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "chosen", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "rejected", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "created", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "source", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	}, &hfMeta)
	rows := []map[string]any{
		{"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "score": 0.5, "source": "math"},
		{"prompt": "Say hi in French", "chosen": "Bonjour", "rejected": "Hola", "score": nil, "source": nil},
		{"prompt": "Ünïcödé ✓", "chosen": "ok 😀", "rejected": "", "score": -1.25, "source": "x"},
	}
	var batches []arrow.Record
	for _, part := range [][]map[string]any{rows[:2], rows[2:]} {
		b := array.NewRecordBuilder(mem, schema)
		for _, r := range part {
			b.Field(0).(*array.StringBuilder).Append(r["prompt"].(string))
			b.Field(1).(*array.StringBuilder).Append(r["chosen"].(string))
			b.Field(2).(*array.LargeStringBuilder).Append(r["rejected"].(string))
			if v, ok := r["score"].(float64); ok {
				b.Field(3).(*array.Float64Builder).Append(v)
			} else {
				b.Field(3).AppendNull()
			}
			b.Field(4).(*array.TimestampBuilder).Append(1_700_000_000_000_000)
			if v, ok := r["source"].(string); ok {
				b.Field(5).(*array.LargeStringBuilder).Append(v)
			} else {
				b.Field(5).AppendNull()
			}
		}
		batches = append(batches, b.NewRecord())
	}
	write(filepath.Join(out, "standard.arrow"), schema, batches, false)
	for _, r := range rows {
		r["created"] = "2023-11-14T22:13:20"
	}
	writeJSONL(filepath.Join(out, "standard.jsonl"), rows)
}

var message = arrow.StructOf(
	arrow.Field{Name: "content", Type: arrow.BinaryTypes.String, Nullable: true},
	arrow.Field{Name: "role", Type: arrow.BinaryTypes.String, Nullable: true},
)

func appendMessages(b *array.ListBuilder, msgs [][2]string) {
	b.Append(true)
	sb := b.ValueBuilder().(*array.StructBuilder)
	for _, m := range msgs {
		sb.Append(true)
		sb.FieldBuilder(0).(*array.StringBuilder).Append(m[1])
		sb.FieldBuilder(1).(*array.StringBuilder).Append(m[0])
	}
}

func msgJSON(msgs [][2]string) []map[string]any {
	out := []map[string]any{}
	for _, m := range msgs {
		out = append(out, map[string]any{"role": m[0], "content": m[1]})
	}
	return out
}

// conversational: TRL's conversational format as datasets stores it: lists
// of {content, role} structs, with an implicit prompt in one batch and an
// explicit one in the other (two files: a batch's columns are fixed).
func conversational(out string) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: arrow.ListOf(message), Nullable: true},
		{Name: "chosen", Type: arrow.ListOf(message), Nullable: true},
		{Name: "rejected", Type: arrow.ListOf(message), Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, &hfMeta)
	type row struct{ prompt, chosen, rejected [][2]string }
	rows := []row{
		{[][2]string{{"system", "Be brief."}, {"user", "Capital of France?"}}, [][2]string{{"assistant", "Paris."}}, [][2]string{{"assistant", "Lyon."}}},
		{[][2]string{{"user", "2+2?"}, {"assistant", "4"}, {"user", "and 3+3?"}}, [][2]string{{"assistant", "6"}}, [][2]string{{"assistant", "7"}}},
		{[][2]string{{"user", "Name a color"}}, [][2]string{{"assistant", "Blue"}}, [][2]string{{"assistant", "Seven"}}},
	}
	var batches []arrow.Record
	var js []map[string]any
	for bi, part := range [][]row{rows[:1], rows[1:]} {
		b := array.NewRecordBuilder(mem, schema)
		for i, r := range part {
			appendMessages(b.Field(0).(*array.ListBuilder), r.prompt)
			appendMessages(b.Field(1).(*array.ListBuilder), r.chosen)
			appendMessages(b.Field(2).(*array.ListBuilder), r.rejected)
			tb := b.Field(3).(*array.ListBuilder)
			if bi == 1 && i == 0 {
				tb.AppendNull()
			} else {
				tb.Append(true)
				tb.ValueBuilder().(*array.StringBuilder).Append("t")
			}
			js = append(js, map[string]any{"prompt": msgJSON(r.prompt), "chosen": msgJSON(r.chosen), "rejected": msgJSON(r.rejected)})
		}
		batches = append(batches, b.NewRecord())
	}
	write(filepath.Join(out, "conversational.arrow"), schema, batches, false)
	writeJSONL(filepath.Join(out, "conversational.jsonl"), js)
}

// tokenized: pre-tokenized rows in the random-access file format, with
// every integer width relupo maps to ids and reference log-probs in float32
// and float64.
func tokenized(out string) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt_input_ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
		{Name: "chosen_input_ids", Type: arrow.LargeListOf(arrow.PrimitiveTypes.Int64)},
		{Name: "rejected_input_ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Uint16)},
		{Name: "ref_chosen_logps", Type: arrow.PrimitiveTypes.Float32},
		{Name: "ref_rejected_logps", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	type row struct {
		p, c, r []int
		rc, rr  float64
	}
	rows := []row{
		{[]int{1, 5, 9}, []int{7, 8, 2}, []int{6, 2}, -3.5, -4.25},
		{[]int{1}, []int{3, 3, 3, 2}, []int{65535, 2}, -1.5, -7.125},
	}
	b := array.NewRecordBuilder(mem, schema)
	var js []map[string]any
	for _, r := range rows {
		pb := b.Field(0).(*array.ListBuilder)
		pb.Append(true)
		for _, v := range r.p {
			pb.ValueBuilder().(*array.Int32Builder).Append(int32(v))
		}
		cb := b.Field(1).(*array.LargeListBuilder)
		cb.Append(true)
		for _, v := range r.c {
			cb.ValueBuilder().(*array.Int64Builder).Append(int64(v))
		}
		rb := b.Field(2).(*array.ListBuilder)
		rb.Append(true)
		for _, v := range r.r {
			rb.ValueBuilder().(*array.Uint16Builder).Append(uint16(v))
		}
		b.Field(3).(*array.Float32Builder).Append(float32(r.rc))
		b.Field(4).(*array.Float64Builder).Append(r.rr)
		js = append(js, map[string]any{"prompt_input_ids": r.p, "chosen_input_ids": r.c, "rejected_input_ids": r.r,
			"ref_chosen_logps": r.rc, "ref_rejected_logps": r.rr})
	}
	write(filepath.Join(out, "tokenized.arrow"), schema, []arrow.Record{b.NewRecord()}, true)
	writeJSONL(filepath.Join(out, "tokenized.jsonl"), js)
}

// sharegpt: LLaMA-Factory's ShareGPT preference rows: conversations, and
// chosen and rejected as single {from, value} structs.
func sharegpt(out string) {
	turn := arrow.StructOf(
		arrow.Field{Name: "from", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "value", Type: arrow.BinaryTypes.String},
	)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "conversations", Type: arrow.ListOf(turn)},
		{Name: "chosen", Type: turn},
		{Name: "rejected", Type: turn},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	setTurn := func(sb *array.StructBuilder, from, value string) {
		sb.Append(true)
		sb.FieldBuilder(0).(*array.StringBuilder).Append(from)
		sb.FieldBuilder(1).(*array.StringBuilder).Append(value)
	}
	lb := b.Field(0).(*array.ListBuilder)
	lb.Append(true)
	setTurn(lb.ValueBuilder().(*array.StructBuilder), "human", "Write a haiku about rain.")
	setTurn(b.Field(1).(*array.StructBuilder), "gpt", "Soft rain on the roof")
	setTurn(b.Field(2).(*array.StructBuilder), "gpt", "Rain is wet.")
	write(filepath.Join(out, "sharegpt.arrow"), schema, []arrow.Record{b.NewRecord()}, false)
	writeJSONL(filepath.Join(out, "sharegpt.jsonl"), []map[string]any{{
		"conversations": []map[string]any{{"from": "human", "value": "Write a haiku about rain."}},
		"chosen":        map[string]any{"from": "gpt", "value": "Soft rain on the roof"},
		"rejected":      map[string]any{"from": "gpt", "value": "Rain is wet."},
	}})
}

// dictionary: a dictionary-encoded prompt column, which relupo refuses.
func dictionary(out string) {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: dt}, {Name: "chosen", Type: arrow.BinaryTypes.String}, {Name: "rejected", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	must(b.Field(0).(*array.BinaryDictionaryBuilder).AppendString("p"))
	b.Field(1).(*array.StringBuilder).Append("c")
	b.Field(2).(*array.StringBuilder).Append("r")
	write(filepath.Join(out, "dictionary.arrow"), schema, []arrow.Record{b.NewRecord()}, false)
}

// compressed: the same rows in an LZ4-compressed stream (pandas'
// to_feather compresses with LZ4 by default) and a ZSTD-compressed file,
// with a column long enough for the compression to pay, one short enough
// for Arrow to store it uncompressed (length -1), and a null.
func compressed(out string) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: arrow.BinaryTypes.String}, {Name: "chosen", Type: arrow.BinaryTypes.String},
		{Name: "rejected", Type: arrow.BinaryTypes.String}, {Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	var rows []map[string]any
	b := array.NewRecordBuilder(mem, schema)
	for i := range 40 {
		p := fmt.Sprintf("Question %d: %s", i, strings.Repeat("why is the sky blue? ", 1+i%5))
		c, r := fmt.Sprintf("Because of Rayleigh scattering (%d).", i), fmt.Sprintf("Because it is %d.", i)
		b.Field(0).(*array.StringBuilder).Append(p)
		b.Field(1).(*array.StringBuilder).Append(c)
		b.Field(2).(*array.StringBuilder).Append(r)
		if i%7 == 0 {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.StringBuilder).Append("n")
		}
		rows = append(rows, map[string]any{"prompt": p, "chosen": c, "rejected": r})
	}
	rec := b.NewRecord()
	write(filepath.Join(out, "lz4.arrow"), schema, []arrow.Record{rec}, false, ipc.WithLZ4())
	write(filepath.Join(out, "zstd.arrow"), schema, []arrow.Record{rec}, true, ipc.WithZstd())
	writeJSONL(filepath.Join(out, "compressed.jsonl"), rows)
}

// views: string and binary views (what polars writes by default), short
// values inline and long ones in several data buffers, and a null.
func views(out string) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: arrow.BinaryTypes.StringView}, {Name: "chosen", Type: arrow.BinaryTypes.StringView},
		{Name: "rejected", Type: arrow.BinaryTypes.BinaryView}, {Name: "tag", Type: arrow.BinaryTypes.StringView, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	b.Field(1).(*array.StringViewBuilder).SetBlockSize(64) // several data buffers
	var rows []map[string]any
	for i := range 12 {
		p := fmt.Sprintf("Q%d", i)
		if i%3 == 0 {
			p = fmt.Sprintf("A longer question, number %d, past twelve bytes", i)
		}
		c, r := fmt.Sprintf("chosen answer %d, long enough to live in a data buffer", i), fmt.Sprintf("no %d", i)
		b.Field(0).(*array.StringViewBuilder).Append(p)
		b.Field(1).(*array.StringViewBuilder).Append(c)
		b.Field(2).(*array.BinaryViewBuilder).Append([]byte(r))
		if i%4 == 0 {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.StringViewBuilder).Append("t")
		}
		rows = append(rows, map[string]any{"prompt": p, "chosen": c, "rejected": r})
	}
	write(filepath.Join(out, "views.arrow"), schema, []arrow.Record{b.NewRecord()}, false)
	writeJSONL(filepath.Join(out, "views.jsonl"), rows)
}

// dictionaryUnread: a dictionary-encoded column no format reads (a pandas
// categorical), in the file and the stream format: its indices are read
// past, its dictionary batch skipped.
func dictionaryUnread(out string) {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "source", Type: dt, Nullable: true},
		{Name: "prompt", Type: arrow.BinaryTypes.String}, {Name: "chosen", Type: arrow.BinaryTypes.String},
		{Name: "rejected", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	var rows []map[string]any
	for i := range 5 {
		if i == 2 {
			b.Field(0).AppendNull()
		} else {
			must(b.Field(0).(*array.BinaryDictionaryBuilder).AppendString([]string{"web", "books"}[i%2]))
		}
		p, c, r := fmt.Sprint("prompt ", i), fmt.Sprint("good ", i), fmt.Sprint("bad ", i)
		b.Field(1).(*array.StringBuilder).Append(p)
		b.Field(2).(*array.StringBuilder).Append(c)
		b.Field(3).(*array.StringBuilder).Append(r)
		rows = append(rows, map[string]any{"prompt": p, "chosen": c, "rejected": r})
	}
	rec := b.NewRecord()
	write(filepath.Join(out, "dictunread.arrow"), schema, []arrow.Record{rec}, true)
	write(filepath.Join(out, "dictunread-stream.arrow"), schema, []arrow.Record{rec}, false)
	writeJSONL(filepath.Join(out, "dictunread.jsonl"), rows)
}
