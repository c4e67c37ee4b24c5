// Package data loads preference datasets and normalizes every record to a
// [Pair]: the prompt messages, the chosen and the rejected assistant message,
// or, for pre-tokenized data, the three token-id lists.
//
// # Files
//
// [Open] reads one file, streamed record by record:
//
//   - JSON Lines: one object per line. Blank lines are ignored. Lines may be
//     up to [Options.MaxRecordBytes] long (256 MiB by default).
//   - JSON: a top-level array of objects, decoded element by element.
//   - gzip-compressed JSON or JSON Lines, recognized by the gzip magic bytes
//     whatever the file is called.
//   - Parquet, recognized by its "PAR1" magic bytes, read one row group at a
//     time. The Hugging Face Hub's exports (for example
//     HuggingFaceH4/ultrafeedback_binarized and
//     princeton-nlp/llama3-ultrafeedback-armorm) load as they are.
//   - Arrow IPC, in the stream format (what Hugging Face datasets writes
//     with save_to_disk, data-00000-of-0000N.arrow, and keeps in its cache)
//     or the file format ("ARROW1"), recognized by its first bytes and read
//     one record batch at a time by relupo's own bounds-checked reader,
//     uncompressed or LZ4- or ZSTD-compressed (Feather v2 files too).
//     String and binary views (polars' default) are read, and a
//     dictionary-encoded column (a pandas categorical) no format reads is
//     passed over. Dictionary-encoded columns a format reads, big-endian
//     data, unions, list views and run-end encoding are refused with an
//     error that says so.
//   - A datasets save_to_disk folder of one Dataset: the Arrow files its
//     state.json names, read in that order as one data set (a fraction
//     counts rows across them). Records are named by their own file.
//
// A leading UTF-8 byte order mark is ignored. Text must be valid UTF-8.
//
// # Formats
//
// Each record is normalized according to a [Format]. With [FormatAuto] (or the
// empty Format) the format is detected once per file, from the first record,
// by the first rule that matches:
//
//  1. prompt_input_ids, chosen_input_ids and rejected_input_ids are all
//     present: [FormatTokenized].
//  2. conversations is present: [FormatShareGPT].
//  3. chosen or rejected is missing: the record is not a preference pair and
//     detection fails.
//  4. prompt is present: [FormatConversational] if prompt, chosen or rejected
//     is a list, otherwise [FormatStandard].
//  5. chosen and rejected are strings that both look like Anthropic HH
//     transcripts (after leading white space they begin with "Human:" and
//     they contain "\n\nAssistant:"): [FormatHH].
//  6. Otherwise: [FormatImplicit].
//
// Every later record of the file is read with the detected format. The
// documentation of each Format constant says how its records are normalized.
//
// # Errors and skipped records
//
// Problems with a record are reported as a [*RecordError] that names the file
// and the record: "file.jsonl:12" (1-based line), "file.json:record 3" or
// "file.parquet:row 3" and "file.arrow:row 3" (0-based index). Two kinds of problem are told apart:
//
//   - Malformed records (invalid JSON or UTF-8, a missing field, a value of
//     the wrong type, an unsupported role, a conversation that does not end
//     with an assistant message, ...) stop the read with an error.
//   - Records that are well formed but carry no usable preference (see
//     [ErrEmptyResponse], [ErrSameResponse] and [ErrDivergentTranscripts])
//     are skipped and reported to [Options.OnSkip]; with [Options.Strict]
//     they stop the read too. Such records occur in real data sets: the test
//     split of Anthropic's hh-rlhf harmless-base has nine of them in 2312.
//
// # Mixtures
//
// [ParseMixture] reads a "file.jsonl:0.5,other.parquet" list, [LoadAll] loads
// such a list with the dataset-mixer semantics of the alignment handbook (the
// first floor(fraction·rows) rows of each file), and [SplitEval] holds out a
// deterministic evaluation split.
//
// # Examples
//
// An [Example] is a pair as token ids, ready for a model. [Encoder] turns a
// Pair into one (text through the chat template and tokenizer, the
// official SimPO/RePO pipeline; pre-tokenized ids verbatim),
// [Truncation] cuts it as the official script does, and [Example.Check]
// refuses what a model cannot train on. [Load] does all of it for a
// mixture, so that every example it returns can be trained on.
package data

import (
	"errors"
	"fmt"
)

// Message is one chat turn. Role is "system", "user" or "assistant".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Pair is one preference example normalized from any input format.
type Pair struct {
	// Prompt is the conversation before the response; it may hold several
	// turns, a system message first. It is empty for tokenized records.
	Prompt []Message
	// Chosen is the preferred assistant message.
	Chosen Message
	// Rejected is the dispreferred assistant message.
	Rejected Message

	// PromptIDs, ChosenIDs and RejectedIDs hold the token ids of a
	// pre-tokenized record (TRL columns prompt_input_ids, chosen_input_ids
	// and rejected_input_ids), to be used verbatim. Tokenized reports
	// whether they are set.
	PromptIDs, ChosenIDs, RejectedIDs []int
	Tokenized                         bool

	// RefChosenLogps and RefRejectedLogps are the precomputed reference
	// log-probability sums of the responses (TRL columns ref_chosen_logps
	// and ref_rejected_logps), or nil when the record has none.
	RefChosenLogps, RefRejectedLogps *float64

	// PlainText reports that the record holds plain text rather than a
	// conversation: FormatStandard records, and FormatImplicit records whose
	// chosen and rejected are strings. TRL tokenizes such text without a
	// chat template; Prompt then holds one user message and the responses
	// carry the text verbatim.
	PlainText bool
	// Format is the format the record was read with.
	Format Format
	// Source names the record for messages: "file:line", "file:record N"
	// or "file:row N".
	Source string
}

// Format names a record layout.
type Format string

// The record formats. The zero Format means FormatAuto.
const (
	// FormatAuto detects the format from the first record of each file
	// (see the package documentation for the rules).
	FormatAuto Format = "auto"

	// FormatStandard is TRL's standard preference format: prompt, chosen
	// and rejected are strings. Prompt becomes one user message, chosen and
	// rejected become assistant messages; text is kept verbatim.
	FormatStandard Format = "trl-standard"

	// FormatConversational is TRL's conversational preference format (also
	// the layout of the Hub's ultrafeedback data sets): chosen and rejected
	// are message lists whose last message is the assistant's response;
	// prompt is a message list or a string. The responses are the last
	// messages only. As in the SimPO/RePO training script, the prompt is the
	// prompt list when prompt is a list, and chosen[:-1] otherwise (a string
	// prompt is used as one user message only when chosen holds nothing but
	// the response). chosen[:-1] and rejected[:-1] must be equal.
	FormatConversational Format = "trl-conversational"

	// FormatImplicit is TRL's preference format with an implicit prompt:
	// only chosen and rejected, both strings or both message lists. For
	// lists the prompt is their common leading messages, which must be all
	// but the last message of each. For strings it is their common prefix
	// with TRL's extract_prompt rules: the prefix ends where the two strings
	// first differ, one character earlier when that character is a space
	// (the space goes to the responses), and at the last character of the
	// shorter string when one string is a prefix of the other. Text is kept
	// verbatim.
	FormatImplicit Format = "implicit-prompt"

	// FormatHH is Anthropic's hh-rlhf format: chosen and rejected are whole
	// transcripts "\n\nHuman: …\n\nAssistant: …". Each transcript is split at
	// every "\n\nHuman:" and "\n\nAssistant:" marker into user and assistant
	// messages (consecutive turns of one role stay separate messages), and
	// each message's content is the text between two markers with its
	// leading and trailing white space removed; all inner white space is
	// kept. A transcript must begin with a Human turn (leading white space
	// before the first "Human:" is allowed) and end with an Assistant turn.
	// The prompt is every turn before the last, which must be the same in
	// both transcripts (else the record is skipped, see
	// ErrDivergentTranscripts); the responses are the final Assistant turns.
	// This is the split TRL's hh-rlhf script makes (the common prefix up to
	// the last "\n\nAssistant:"), with white space trimmed per message.
	FormatHH Format = "hh"

	// FormatShareGPT is the ShareGPT preference format exported by
	// LLaMA-Factory: conversations is a list of {from, value} turns and
	// chosen and rejected are single {from, value} turns. Roles human and
	// user map to user, gpt and assistant to assistant, system to system;
	// any other role (observation, function_call, ...) is an error. The
	// last conversation turn must be from the user. An optional system
	// string field is used as the system message when the conversation does
	// not begin with one. Text is kept verbatim.
	FormatShareGPT Format = "sharegpt"

	// FormatTokenized is pre-tokenized data: prompt_input_ids,
	// chosen_input_ids and rejected_input_ids are lists of non-negative
	// integer token ids, used verbatim.
	FormatTokenized Format = "tokenized"
)

// Formats lists every Format, FormatAuto first.
func Formats() []Format {
	return []Format{FormatAuto, FormatStandard, FormatConversational, FormatImplicit, FormatHH, FormatShareGPT, FormatTokenized}
}

// ParseFormat returns the Format named s. The empty string means FormatAuto.
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return FormatAuto, nil
	}
	for _, f := range Formats() {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("data: unknown format %q (want one of %v)", s, Formats())
}

// Errors for records that are well formed but carry no usable preference.
// Unless Options.Strict is set such records are skipped and reported to
// Options.OnSkip. Test for them with errors.Is.
var (
	// ErrEmptyResponse: the chosen or the rejected response is empty or
	// white space only (or has no token ids).
	ErrEmptyResponse = errors.New("empty response")
	// ErrSameResponse: the chosen and rejected responses are identical.
	ErrSameResponse = errors.New("chosen and rejected responses are identical")
	// ErrDivergentTranscripts: two HH transcripts differ before their final
	// Assistant turns, so one response would span several turns.
	ErrDivergentTranscripts = errors.New("chosen and rejected transcripts differ before their final Assistant turn")
)

// Skippable reports whether err is one of the errors for records that are
// skipped unless Options.Strict is set.
func Skippable(err error) bool {
	return errors.Is(err, ErrEmptyResponse) || errors.Is(err, ErrSameResponse) || errors.Is(err, ErrDivergentTranscripts)
}

// RecordError is a problem with one record of a file.
type RecordError struct {
	// Source names the record: "file:line", "file:record N" or "file:row N".
	Source string
	// Err says what is wrong.
	Err error
}

// Error returns "data: <source>: <what is wrong>".
func (e *RecordError) Error() string { return "data: " + e.Source + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *RecordError) Unwrap() error { return e.Err }
