// # Encoding text
//
// [Encoder] follows the tokenization of the official SimPO/RePO training
// script (tokenize_row and build_tokenized_answer), with the decisions below.
//
// Chat records (every format but the plain-text ones) are rendered with the
// chat template:
//
//   - prompt_text is the prompt messages rendered without a generation
//     prompt;
//   - the response text is the whole conversation (prompt messages and the
//     assistant message) rendered, minus prompt_text, which must be a prefix
//     of it. The assistant header and the end-of-turn marker therefore belong
//     to the response and are scored. For the templates of the paper
//     (Llama-3, Gemma-2 and SimPO's Mistral template) this is the official
//     script's rendering of the assistant message alone; unlike it, it also
//     works for templates that refuse a conversation starting with an
//     assistant turn (Llama-2's), and it gives the text the model sees in a
//     real conversation for templates that render a final assistant turn
//     differently (Qwen3 writes an empty think block there);
//   - a leading BOS string of the response text is removed, as the official
//     script does;
//   - the official script's empty system message is not inserted: for the
//     paper's templates it renders to nothing (Mistral and Gemma strip it),
//     while templates that do render it (Qwen's, Llama-2's) would get an
//     empty system block the data never had.
//
// With [EncodeOptions.AssistantHeaderInPrompt] (TRL's convention) prompt_text
// is rendered with the generation prompt, so the assistant header belongs to
// the prompt and only the assistant's content and end-of-turn are scored.
//
// Plain-text records ([Pair.PlainText]: TRL's standard format and implicit
// prompts of strings) use no template: the prompt and response
// strings are tokenized as they are.
//
// The texts are then tokenized as build_tokenized_answer does: the prompt
// alone and prompt+response jointly, without special tokens; the response ids
// are the joint ids after the prompt's length, and when the joint
// tokenization changed the prompt's tokens (a merge across the boundary) the
// boundary moves back by one token. The chosen and rejected prompt ids may
// then differ in at most one token and by at most one in length, otherwise
// the record is an error. BOS is put before each prompt that does not start
// with it (when the tokenizer has a BOS token) and EOS after each response
// that does not end with it.
//
// The official script keeps separate prompt ids for the chosen and the
// rejected sequence; [Encoder.Encode] returns one prompt, their longest
// common prefix, and moves what is left of a side's prompt (at most one
// token, only after a boundary merge on one side) to the front of that
// side's response. Each full sequence is exactly the official one; that side
// then scores one more token.
package data
