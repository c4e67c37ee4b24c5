package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// The Hub's Parquet exports are written by Arrow: every field optional, lists
// as three-level LIST groups (list / element). These schemas reproduce them.
var (
	hubMessage = parquet.Optional(parquet.List(parquet.Optional(parquet.Group{
		"content": parquet.Optional(parquet.String()),
		"role":    parquet.Optional(parquet.String()),
	})))
	hubDouble = parquet.Optional(parquet.Leaf(parquet.DoubleType))

	// HuggingFaceH4/ultrafeedback_binarized.
	ultrafeedbackSchema = parquet.NewSchema("schema", parquet.Group{
		"prompt":         parquet.Optional(parquet.String()),
		"prompt_id":      parquet.Optional(parquet.String()),
		"chosen":         hubMessage,
		"rejected":       hubMessage,
		"messages":       hubMessage,
		"score_chosen":   hubDouble,
		"score_rejected": hubDouble,
	})
	// princeton-nlp/*-ultrafeedback*.
	princetonSchema = parquet.NewSchema("schema", parquet.Group{
		"prompt_id":       parquet.Optional(parquet.String()),
		"prompt":          parquet.Optional(parquet.String()),
		"all_generations": parquet.Optional(parquet.List(parquet.Optional(parquet.String()))),
		"all_rm_scores":   parquet.Optional(parquet.List(hubDouble)),
		"chosen":          hubMessage,
		"rejected":        hubMessage,
	})
	tokenizedSchema = parquet.NewSchema("schema", parquet.Group{
		"prompt_input_ids":   parquet.Optional(parquet.List(parquet.Optional(parquet.Int(32)))),
		"chosen_input_ids":   parquet.Optional(parquet.List(parquet.Optional(parquet.Int(64)))),
		"rejected_input_ids": parquet.Optional(parquet.List(parquet.Optional(parquet.Int(64)))),
		"ref_chosen_logps":   hubDouble,
		"ref_rejected_logps": hubDouble,
	})
)

func msgs(roleContent ...string) []any {
	var out []any
	for i := 0; i+1 < len(roleContent); i += 2 {
		out = append(out, map[string]any{"role": roleContent[i], "content": roleContent[i+1]})
	}
	return out
}

// writeParquet writes rows to a Parquet file, two rows per row group so that
// reads cross row-group boundaries.
func writeParquet(t *testing.T, path string, schema *parquet.Schema, rows []map[string]any) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[map[string]any](f, schema, parquet.MaxRowsPerRowGroup(2))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func ultrafeedbackRow(i int, q, good, bad string) map[string]any {
	return map[string]any{
		"prompt":         q,
		"prompt_id":      strings.Repeat("ab", i+1),
		"chosen":         msgs("user", q, "assistant", good),
		"rejected":       msgs("user", q, "assistant", bad),
		"messages":       msgs("user", q, "assistant", good),
		"score_chosen":   8.5,
		"score_rejected": 3.0,
	}
}

func princetonRow(q, good, bad string) map[string]any {
	return map[string]any{
		"prompt_id":       "x",
		"prompt":          q,
		"all_generations": []any{good, bad, "other"},
		"all_rm_scores":   []any{0.9, 0.1, 0.5},
		"chosen":          msgs("user", q, "assistant", good),
		"rejected":        msgs("user", q, "assistant", bad),
	}
}

func TestParquetHubLayouts(t *testing.T) {
	dir := t.TempDir()
	qs := []string{"What is 2+2?", "Name a color.", "Say hi.", "Café?", "Last one"}
	tests := []struct {
		name   string
		schema *parquet.Schema
		row    func(i int) map[string]any
	}{
		{"ultrafeedback_binarized.parquet", ultrafeedbackSchema, func(i int) map[string]any {
			return ultrafeedbackRow(i, qs[i], "good "+qs[i], "bad "+qs[i])
		}},
		{"princeton.parquet", princetonSchema, func(i int) map[string]any {
			return princetonRow(qs[i], "good "+qs[i], "bad "+qs[i])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			var rows []map[string]any
			var want []Pair
			for i := range qs {
				rows = append(rows, tt.row(i))
				want = append(want, Pair{
					Prompt: []Message{user(qs[i])}, Chosen: assistant("good " + qs[i]), Rejected: assistant("bad " + qs[i]),
					Format: FormatConversational, Source: path + ":row " + string(rune('0'+i)),
				})
			}
			writeParquet(t, path, tt.schema, rows)
			got, _, err := readAll(t, path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			comparePairs(t, got, want)

			// LoadAll keeps floor(0.5·5) = 2 rows.
			half, err := LoadAll(t.Context(), []Source{{Path: path, Fraction: 0.5}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			comparePairs(t, half, want[:2])
		})
	}
}

func TestParquetTokenized(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tok.parquet")
	writeParquet(t, path, tokenizedSchema, []map[string]any{
		{"prompt_input_ids": []any{int32(1), int32(42)}, "chosen_input_ids": []any{int64(7), int64(2)}, "rejected_input_ids": []any{int64(8), int64(2)},
			"ref_chosen_logps": -1.25, "ref_rejected_logps": -2.5},
		{"prompt_input_ids": []any{int32(1)}, "chosen_input_ids": []any{int64(3)}, "rejected_input_ids": []any{int64(4)}},
		{"prompt_input_ids": []any{int32(1)}, "chosen_input_ids": []any{int64(3)}, "rejected_input_ids": []any{int64(-4)}},
	})
	got, _, err := readAll(t, path, Options{})
	want := []Pair{
		{PromptIDs: []int{1, 42}, ChosenIDs: []int{7, 2}, RejectedIDs: []int{8, 2}, Tokenized: true,
			RefChosenLogps: ptr(-1.25), RefRejectedLogps: ptr(-2.5), Format: FormatTokenized, Source: path + ":row 0"},
		{PromptIDs: []int{1}, ChosenIDs: []int{3}, RejectedIDs: []int{4}, Tokenized: true, Format: FormatTokenized, Source: path + ":row 1"},
	}
	comparePairs(t, got, want)
	wantErr := "data: " + path + ":row 2: tokenized: rejected_input_ids[0]: want a token id (an integer from 0 to 2147483647), got -4"
	if err == nil || err.Error() != wantErr {
		t.Fatalf("got %v\nwant %s", err, wantErr)
	}
}

func TestParquetErrors(t *testing.T) {
	dir := t.TempDir()
	good := ultrafeedbackRow(0, "q", "a", "b")
	tests := []struct {
		name string
		bad  map[string]any
		want string
	}{
		{"last message from user", map[string]any{"prompt": "q", "chosen": msgs("user", "q", "assistant", "a"), "rejected": msgs("user", "q", "user", "b")},
			`:row 3: trl-conversational: rejected: the last message is from "user", want "assistant"`},
		{"null chosen", map[string]any{"prompt": "q", "chosen": nil, "rejected": msgs("user", "q", "assistant", "b")},
			`:row 3: trl-conversational: chosen: want a list, got null`},
		{"null role", map[string]any{"prompt": "q", "chosen": []any{map[string]any{"content": "a"}}, "rejected": msgs("assistant", "b")},
			`:row 3: trl-conversational: chosen[0]: role: want a string, got null`},
		{"invalid UTF-8", map[string]any{"prompt": "q", "chosen": msgs("user", "q\xff", "assistant", "a"), "rejected": msgs("user", "q\xff", "assistant", "b")},
			`:row 3: trl-conversational: prompt message 0: invalid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".parquet")
			writeParquet(t, path, ultrafeedbackSchema, []map[string]any{good, good, good, tt.bad, good})
			got, _, err := readAll(t, path, Options{})
			if want := "data: " + path + tt.want; err == nil || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
			if len(got) != 3 {
				t.Fatalf("got %d pairs before the error, want 3", len(got))
			}
		})
	}

	t.Run("corrupt file", func(t *testing.T) {
		path := filepath.Join(dir, "corrupt.parquet")
		os.WriteFile(path, []byte("PAR1 this is not parquet PAR1"), 0o644)
		_, err := Open(path, Options{})
		if err == nil || !strings.HasPrefix(err.Error(), "data: "+path+": invalid Parquet file") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated file", func(t *testing.T) {
		path := filepath.Join(dir, "whole.parquet")
		writeParquet(t, path, ultrafeedbackSchema, []map[string]any{good, good, good})
		b, _ := os.ReadFile(path)
		cut := filepath.Join(dir, "cut.parquet")
		os.WriteFile(cut, b[:len(b)/2], 0o644)
		if _, _, err := readAll(t, cut, Options{}); err == nil || !strings.HasPrefix(err.Error(), "data: "+cut+":") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestParquetDetectUnknown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sft.parquet")
	schema := parquet.NewSchema("schema", parquet.Group{"messages": hubMessage, "text": parquet.Optional(parquet.String())})
	writeParquet(t, path, schema, []map[string]any{{"messages": msgs("user", "q"), "text": "t"}})
	_, _, err := readAll(t, path, Options{})
	want := "data: " + path + `:row 0: cannot detect the format: want chosen and rejected (or conversations, or prompt_input_ids, chosen_input_ids and rejected_input_ids); the record has fields "messages", "text"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
