package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const okStd = `{"prompt":"p","chosen":"c","rejected":"r"}`

func TestRecordErrors(t *testing.T) {
	tests := []struct {
		name   string
		file   string // file name; its kind comes from the content
		data   string
		opts   Options
		want   string // the whole error message after "data: <path>"
		partly bool   // want is a prefix only (message text from encoding/json or compress)
	}{
		// JSON Lines: errors name the 1-based line.
		{name: "invalid JSON", file: "a.jsonl", data: okStd + "\n" + `{"prompt": "p", "chosen": }` + "\n",
			want: `:2: invalid JSON: invalid character '}' looking for beginning of value`},
		{name: "truncated last line", file: "a.jsonl", data: okStd + "\n\n" + `{"prompt": "p"`,
			want: `:3: invalid JSON: unexpected EOF`},
		{name: "pretty-printed object", file: "o.json", data: "{\n  \"prompt\": \"p\"\n}\n",
			want: `:1: invalid JSON: unexpected EOF (JSON Lines hold one record per line; a JSON file must hold a top-level array of records)`},
		{name: "two objects on a line", file: "a.jsonl", data: okStd + " " + okStd + "\n",
			want: `:1: invalid JSON: more data after the object`},
		{name: "not an object", file: "a.jsonl", data: okStd + "\n[1, 2]\n",
			want: `:2: want a JSON object, got a list`},
		{name: "invalid UTF-8", file: "a.jsonl", data: okStd + "\n" + `{"prompt":"p","chosen":"caf` + "\xe9" + `","rejected":"r"}` + "\n",
			want: `:2: invalid UTF-8`},
		{name: "missing field", file: "a.jsonl", data: okStd + "\n" + `{"prompt":"p","chosen":"c"}` + "\n",
			want: `:2: trl-standard: missing field "rejected"`},
		{name: "wrong type", file: "a.jsonl", data: okStd + "\n" + `{"prompt":"p","chosen":3,"rejected":"r"}` + "\n",
			want: `:2: trl-standard: chosen: want a string, got a number`},
		{name: "null field", file: "a.jsonl", data: `{"prompt":null,"chosen":"c","rejected":"r"}`,
			want: `:1: trl-standard: prompt: want a string, got null`},
		{name: "empty prompt", file: "a.jsonl", data: `{"prompt":"","chosen":"c","rejected":"r"}`,
			want: `:1: trl-standard: empty prompt`},
		{name: "empty chosen, strict", file: "a.jsonl", data: okStd + "\n" + `{"prompt":"p","chosen":" \n","rejected":"r"}`, opts: Options{Strict: true},
			want: `:2: trl-standard: chosen: empty response`},
		{name: "empty rejected, strict", file: "a.jsonl", data: `{"prompt":"p","chosen":"c","rejected":""}`, opts: Options{Strict: true},
			want: `:1: trl-standard: rejected: empty response`},
		{name: "same responses, strict", file: "a.jsonl", data: `{"prompt":"p","chosen":"c","rejected":"c"}`, opts: Options{Strict: true},
			want: `:1: trl-standard: chosen and rejected responses are identical`},
		{name: "reference logps wrong type", file: "a.jsonl", data: `{"prompt":"p","chosen":"c","rejected":"r","ref_chosen_logps":"-1"}`,
			want: `:1: trl-standard: ref_chosen_logps: want a number, got a string`},
		{name: "undetectable", file: "a.jsonl", data: `{"messages":[{"role":"user","content":"hi"}]}`,
			want: `:1: cannot detect the format: want chosen and rejected (or conversations, or prompt_input_ids, chosen_input_ids and rejected_input_ids); the record has fields "messages"`},
		{name: "line too long", file: "a.jsonl", data: okStd + "\n" + okStd + okStd + "\n", opts: Options{MaxRecordBytes: len(okStd) + 5},
			want: `:2: line longer than 47 bytes`},

		// Conversational.
		{name: "last message not assistant", file: "c.jsonl",
			data: `{"prompt":"q","chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"user","content":"b"}]}`,
			want: `:1: trl-conversational: rejected: the last message is from "user", want "assistant"`},
		{name: "prompts differ", file: "c.jsonl",
			data: `{"prompt":"q","chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"Q"},{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: chosen and rejected differ before their last message (chosen has 1 leading messages, rejected 1, first difference at message 0)`},
		{name: "unsupported role", file: "c.jsonl",
			data: `{"prompt":[{"role":"tool","content":"x"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: prompt[0]: unsupported role "tool" (want system, user or assistant)`},
		{name: "message without content", file: "c.jsonl",
			data: `{"prompt":[{"role":"user"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: prompt[0]: missing field "content"`},
		{name: "multimodal content", file: "c.jsonl",
			data: `{"prompt":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: prompt[0]: content: want a string, got a list`},
		{name: "no messages, strict", file: "c.jsonl", opts: Options{Strict: true},
			data: `{"prompt":[{"role":"user","content":"q"}],"chosen":[],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: chosen: empty response (no messages)`},
		{name: "message not an object", file: "c.jsonl",
			data: `{"prompt":"q","chosen":["a"],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: chosen[0]: want a {role, content} object, got a string`},
		{name: "prompt wrong type", file: "c.jsonl",
			data: `{"prompt":{},"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: prompt: want a string or a list of messages, got an object`},
		{name: "no prompt at all", file: "c.jsonl",
			data: `{"prompt":"","chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: `:1: trl-conversational: empty prompt`},

		// Implicit prompt.
		{name: "no common prefix", file: "i.jsonl", data: `{"chosen":"abc","rejected":"xyz"}`,
			want: `:1: implicit-prompt: chosen and rejected share no prompt (no common prefix)`},
		{name: "mixed string and list", file: "i.jsonl", data: `{"chosen":"abc","rejected":[]}`,
			want: `:1: implicit-prompt: chosen: want a list, got a string`},

		// HH.
		{name: "hh ends with Human", file: "h.jsonl",
			data: `{"chosen":"\n\nHuman: a\n\nAssistant: b","rejected":"\n\nHuman: a\n\nAssistant: b\n\nHuman: c"}`,
			want: `:1: hh: rejected: the transcript ends with a Human turn, want an Assistant turn last`},
		{name: "hh does not begin with Human", file: "h.jsonl", opts: Options{Format: FormatHH},
			data: `{"chosen":"Assistant: b","rejected":"\n\nHuman: a\n\nAssistant: c"}`,
			want: `:1: hh: chosen: does not begin with "Human:"`},
		{name: "hh divergent, strict", file: "h.jsonl", opts: Options{Strict: true},
			data: `{"chosen":"\n\nHuman: a\n\nAssistant: b","rejected":"\n\nHuman: x\n\nAssistant: c"}`,
			want: `:1: hh: chosen and rejected transcripts differ before their final Assistant turn (chosen has 2 turns, rejected 2, first difference at turn 0)`},

		// ShareGPT in a JSON array: errors name the 0-based record.
		{name: "sharegpt observation", file: "s.json",
			data: `[{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"a"},"rejected":{"from":"gpt","value":"b"}},
			{"conversations":[{"from":"human","value":"q"},{"from":"function_call","value":"{}"},{"from":"observation","value":"x"}],"chosen":{"from":"gpt","value":"a"},"rejected":{"from":"gpt","value":"b"}}]`,
			want: `:record 1: sharegpt: conversations[1]: unsupported role "function_call" (want human, gpt or system)`},
		{name: "sharegpt function_call response", file: "s.json",
			data: `[{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"function_call","value":"a"},"rejected":{"from":"gpt","value":"b"}}]`,
			want: `:record 0: sharegpt: chosen: unsupported role "function_call" (want human, gpt or system)`},
		{name: "sharegpt human response", file: "s.json",
			data: `[{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"a"},"rejected":{"from":"human","value":"b"}}]`,
			want: `:record 0: sharegpt: rejected: the response is from "user", want an assistant (gpt) turn`},
		{name: "sharegpt prompt ends with gpt", file: "s.json",
			data: `[{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}],"chosen":{"from":"gpt","value":"a"},"rejected":{"from":"gpt","value":"b"}}]`,
			want: `:record 0: sharegpt: conversations: the last turn must be from the user (human)`},
		{name: "sharegpt late system", file: "s.json",
			data: `[{"conversations":[{"from":"human","value":"q"},{"from":"system","value":"s"}],"chosen":{"from":"gpt","value":"a"},"rejected":{"from":"gpt","value":"b"}}]`,
			want: `:record 0: sharegpt: conversations[1]: a system turn must come first`},
		{name: "sharegpt missing value", file: "s.json",
			data: `[{"conversations":[{"from":"human"}],"chosen":{"from":"gpt","value":"a"},"rejected":{"from":"gpt","value":"b"}}]`,
			want: `:record 0: sharegpt: conversations[0]: missing field "value"`},
		{name: "sharegpt missing rejected", file: "s.json",
			data: `[{"conversations":[{"from":"human","value":"q"}],"chosen":{"from":"gpt","value":"a"}}]`,
			want: `:record 0: sharegpt: missing field "rejected"`},

		// JSON array syntax.
		{name: "array element invalid", file: "s.json", data: "[" + okStd + ",\n {\"prompt\": x}]",
			want: `:record 1: invalid JSON near byte`, partly: true},
		{name: "array element not an object", file: "s.json", data: "[" + okStd + ", 42]",
			want: `:record 1: want a JSON object, got a number`},
		{name: "array truncated", file: "s.json", data: "[" + okStd + ",",
			want: `:record 1: invalid JSON near byte`, partly: true},
		{name: "after the array", file: "s.json", data: "[" + okStd + "] []",
			want: `: invalid JSON: more data after the top-level array`, partly: true},
		{name: "array invalid UTF-8", file: "s.json", data: `[{"prompt":"p","chosen":"c` + "\xff" + `","rejected":"r"}]`,
			want: `:record 0: invalid UTF-8`},

		// Tokenized.
		{name: "negative id", file: "t.jsonl", data: `{"prompt_input_ids":[1],"chosen_input_ids":[2,-3],"rejected_input_ids":[4]}`,
			want: `:1: tokenized: chosen_input_ids[1]: want a token id (an integer from 0 to 2147483647), got -3`},
		{name: "fractional id", file: "t.jsonl", data: `{"prompt_input_ids":[1.5],"chosen_input_ids":[2],"rejected_input_ids":[4]}`,
			want: `:1: tokenized: prompt_input_ids[0]: want a token id (an integer from 0 to 2147483647), got 1.5`},
		{name: "string id", file: "t.jsonl", data: `{"prompt_input_ids":[1],"chosen_input_ids":[2],"rejected_input_ids":["4"]}`,
			want: `:1: tokenized: rejected_input_ids[0]: want a token id (an integer from 0 to 2147483647), got "4"`},
		{name: "huge id", file: "t.jsonl", data: `{"prompt_input_ids":[1],"chosen_input_ids":[99999999999999999999],"rejected_input_ids":[4]}`,
			want: `:1: tokenized: chosen_input_ids[0]: want a token id (an integer from 0 to 2147483647), got 99999999999999999999`},
		{name: "ids not a list", file: "t.jsonl", data: `{"prompt_input_ids":"1 2","chosen_input_ids":[2],"rejected_input_ids":[4]}`,
			want: `:1: tokenized: prompt_input_ids: want a list, got a string`},
		{name: "empty prompt ids", file: "t.jsonl", data: `{"prompt_input_ids":[],"chosen_input_ids":[2],"rejected_input_ids":[4]}`,
			want: `:1: tokenized: empty prompt_input_ids`},
		{name: "empty chosen ids, strict", file: "t.jsonl", data: `{"prompt_input_ids":[1],"chosen_input_ids":[],"rejected_input_ids":[4]}`, opts: Options{Strict: true},
			want: `:1: tokenized: chosen_input_ids: empty response`},
		{name: "infinite reference logp", file: "t.jsonl", data: `{"prompt_input_ids":[1],"chosen_input_ids":[2],"rejected_input_ids":[4],"ref_rejected_logps":1e999}`,
			want: `:1: tokenized: ref_rejected_logps: invalid number 1e999`},

		// Compressed input.
		{name: "corrupt gzip header", file: "g.jsonl.gz", data: "\x1f\x8b\x00\x00garbage",
			want: `: gzip: invalid header`},
		{name: "corrupt gzip data", file: "g.jsonl.gz", data: "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage",
			want: `: flate: corrupt input`, partly: true},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			got, _, err := readAll(t, path, tt.opts)
			if err == nil {
				t.Fatalf("no error; got %d pairs", len(got))
			}
			want := "data: " + path + tt.want
			if tt.partly {
				if !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("got  %q\nwant %q...", err, want)
				}
			} else if err.Error() != want {
				t.Fatalf("got  %q\nwant %q", err, want)
			}
		})
	}
}

// A folder given as a data file is named as one, not as a failed read, with
// the data files inside it (a datasets save_to_disk folder) listed.
func TestOpenFolder(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, Options{})
	if want := "data: " + dir + " is a folder; give the data files inside it"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	for _, name := range []string{"data-00001-of-00002.arrow", "data-00000-of-00002.arrow", "dataset_info.json"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Open(dir, Options{})
	want := "data: " + dir + " is a folder; give the data files inside it: " + filepath.Join(dir, "data-00000-of-00002.arrow") + "," + filepath.Join(dir, "data-00001-of-00002.arrow")
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// A saved DatasetDict: a folder per split.
	dict := t.TempDir()
	for _, split := range []string{"train", "test"} {
		if err := os.MkdirAll(filepath.Join(dict, split), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dict, split, "data-00000-of-00001.arrow"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dict, "train", "state.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dict, Options{})
	want = "data: " + dict + " is a folder; give the data files inside it, one split's (test: " + filepath.Join(dict, "test", "data-00000-of-00001.arrow") + "; train: " + filepath.Join(dict, "train") + ")"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
