package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// Config is what relupo needs from a model folder's tokenizer_config.json
// (and special_tokens_map.json and chat_template.jinja beside it).
type Config struct {
	// Special tokens; empty when absent or null.
	BOSToken string
	EOSToken string
	PadToken string
	UNKToken string
	// AdditionalSpecialTokens lists additional_special_tokens.
	AdditionalSpecialTokens []string

	// ChatTemplate is the Jinja chat template: chat_template.jinja when
	// present (as transformers ≥ 4.43 saves it), else tokenizer_config.json's
	// chat_template (a string, or the template named "default" from a list
	// of {name, template}). Empty when the model has none.
	ChatTemplate string

	// AddBOSToken and AddEOSToken are add_bos_token and add_eos_token; nil
	// when absent.
	AddBOSToken *bool
	AddEOSToken *bool

	// ModelMaxLength is model_max_length; 0 when absent or when it holds
	// transformers' "no limit" sentinel (about 1e30).
	ModelMaxLength int
}

// SpecialTokens returns the special tokens by the names chat templates use
// (bos_token, eos_token, pad_token, unk_token), leaving out empty ones.
func (c *Config) SpecialTokens() map[string]string {
	m := map[string]string{}
	for name, v := range map[string]string{"bos_token": c.BOSToken, "eos_token": c.EOSToken, "pad_token": c.PadToken, "unk_token": c.UNKToken} {
		if v != "" {
			m[name] = v
		}
	}
	return m
}

type configJSON struct {
	BOSToken                json.RawMessage   `json:"bos_token"`
	EOSToken                json.RawMessage   `json:"eos_token"`
	PadToken                json.RawMessage   `json:"pad_token"`
	UNKToken                json.RawMessage   `json:"unk_token"`
	AdditionalSpecialTokens []json.RawMessage `json:"additional_special_tokens"`
	ChatTemplate            json.RawMessage   `json:"chat_template"`
	AddBOSToken             *bool             `json:"add_bos_token"`
	AddEOSToken             *bool             `json:"add_eos_token"`
	ModelMaxLength          *float64          `json:"model_max_length"`
}

// LoadConfig reads tokenizer_config.json from dir (a model folder, or a file
// inside it such as its tokenizer.json). Tokens missing there are taken from
// special_tokens_map.json when that file exists.
func LoadConfig(dir string) (*Config, error) {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var cj configJSON
	if err := json.Unmarshal(data, &cj); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: invalid JSON: %w", path, err)
	}
	c := &Config{AddBOSToken: cj.AddBOSToken, AddEOSToken: cj.AddEOSToken}
	fields := []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{
		{"bos_token", cj.BOSToken, &c.BOSToken},
		{"eos_token", cj.EOSToken, &c.EOSToken},
		{"pad_token", cj.PadToken, &c.PadToken},
		{"unk_token", cj.UNKToken, &c.UNKToken},
	}
	for _, f := range fields {
		if *f.dst, err = tokenContent(f.raw); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %s: %w", path, f.name, err)
		}
	}
	for i, raw := range cj.AdditionalSpecialTokens {
		s, err := tokenContent(raw)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: additional_special_tokens[%d]: %w", path, i, err)
		}
		c.AdditionalSpecialTokens = append(c.AdditionalSpecialTokens, s)
	}
	if c.ChatTemplate, err = chatTemplate(cj.ChatTemplate); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: chat_template: %w", path, err)
	}
	if cj.ModelMaxLength != nil && *cj.ModelMaxLength > 0 && *cj.ModelMaxLength < 1e18 &&
		*cj.ModelMaxLength <= math.MaxInt32 {
		c.ModelMaxLength = int(*cj.ModelMaxLength)
	}

	jinjaPath := filepath.Join(dir, "chat_template.jinja")
	if tmpl, err := os.ReadFile(jinjaPath); err == nil {
		c.ChatTemplate = string(tmpl)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}

	mapPath := filepath.Join(dir, "special_tokens_map.json")
	if data, err := os.ReadFile(mapPath); err == nil {
		var sm map[string]json.RawMessage
		if err := json.Unmarshal(data, &sm); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: invalid JSON: %w", mapPath, err)
		}
		for _, f := range fields {
			if *f.dst != "" {
				continue
			}
			if *f.dst, err = tokenContent(sm[f.name]); err != nil {
				return nil, fmt.Errorf("tokenizer: %s: %s: %w", mapPath, f.name, err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return c, nil
}

// tokenContent reads a special token written as a string, as an
// AddedToken object {"content": ...}, or as null.
func tokenContent(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", errors.New("want a string or an object with \"content\"")
	}
	return *obj.Content, nil
}

// chatTemplate reads chat_template: a string or a list of {name, template},
// from which the one named "default" is taken.
func chatTemplate(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", errors.New("want a string or a list of {name, template}")
	}
	for _, e := range list {
		if e.Name == "default" {
			return e.Template, nil
		}
	}
	return "", errors.New("no template named \"default\"")
}
