package generate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// CountMarkdown counts as arena-hard-auto's style control does, on answers
// whose expected counts Python's re computed (testdata/gen_markdown_counts.py):
// code blocks, Unicode white space and digits, unclosed fences.
func TestCountMarkdown(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "markdown_counts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Answer string          `json:"answer"`
		Counts json.RawMessage `json:"counts"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		var want MarkdownCounts
		if err := json.Unmarshal(tc.Counts, &want); err != nil {
			t.Fatal(err)
		}
		if got := CountMarkdown(tc.Answer); !reflect.DeepEqual(got, want) {
			t.Errorf("case %d %q:\n got %+v\nwant %+v", i, tc.Answer, got, want)
		}
	}
}

// Arena-Hard answers carry the style-control metadata in both layouts, and
// token_len comes from Meta.CountTokens when it is given.
func TestArenaHardMetadata(t *testing.T) {
	recs := []Record{{UID: "u1", Instruction: "q", Where: "q.jsonl:1"}, {QuestionID: json.RawMessage(`"q2"`), Instruction: "q", Where: "q.jsonl:2"}}
	answer := "# Plan\n1. **first**\n- second\n"
	res := []Result{{Text: answer, TextTokens: 9}, {Text: answer, TextTokens: 9}}
	for _, count := range []bool{false, true} {
		var buf bytes.Buffer
		meta := Meta{Generator: "m"}
		wantLen := 9
		if count {
			meta.CountTokens = func(s string) (int, error) { return len(strings.Fields(s)), nil }
			wantLen = 6 // the answer's white-space separated fields
		}
		if err := Write(&buf, FormatArenaHard, recs, res, meta); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		var uid struct {
			Metadata ArenaHardMeta `json:"metadata"`
		}
		var v01 struct {
			ConvMetadata ArenaHardMeta `json:"conv_metadata"`
			Choices      []struct {
				Turns []struct {
					TokenLen int `json:"token_len"`
				}
			}
		}
		if err := json.Unmarshal([]byte(lines[0]), &uid); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(lines[1]), &v01); err != nil {
			t.Fatal(err)
		}
		for _, m := range []ArenaHardMeta{uid.Metadata, v01.ConvMetadata} {
			if m.TokenLen != wantLen || m.HeaderCount.H1 != 1 || m.ListCount.Ordered != 1 || m.ListCount.Unordered != 1 || m.BoldCount.Stars != 1 {
				t.Errorf("CountTokens %v: metadata %+v, want token_len %d, one h1, one ordered and one unordered item, one bold", count, m, wantLen)
			}
		}
		if v01.Choices[0].Turns[0].TokenLen != wantLen {
			t.Errorf("v0.1 turn token_len %d, want %d", v01.Choices[0].Turns[0].TokenLen, wantLen)
		}
	}
}
