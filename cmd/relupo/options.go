package main

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The options of train.Options are bound here, once: each field's key tag
// is its YAML key, and its flag is the key in kebab-case unless a flag tag
// names it otherwise ("-": no flag).

// optionField is one field of Options with its names.
type optionField struct {
	key, flag, alias, help string
	index                  int
}

func optionFields() []optionField {
	t := reflect.TypeOf(train.Options{})
	var out []optionField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		of := optionField{key: f.Tag.Get("key"), flag: f.Tag.Get("flag"), alias: f.Tag.Get("alias"), help: f.Tag.Get("help"), index: i}
		if of.flag == "" {
			of.flag = strings.ReplaceAll(of.key, "_", "-")
		}
		out = append(out, of)
	}
	return out
}

// bindFlags registers a flag for every option on fs (or only for the
// options whose YAML keys are listed), with o's values as defaults; parsing
// fs then writes into o.
func bindFlags(o *train.Options, fs *pflag.FlagSet, keys ...string) {
	v := reflect.ValueOf(o).Elem()
	for _, f := range optionFields() {
		if f.flag == "-" || len(keys) > 0 && !slices.Contains(keys, f.key) {
			continue
		}
		names := []string{f.flag}
		if f.alias != "" {
			names = append(names, f.alias)
		}
		for i, name := range names {
			help := f.help
			if i > 0 {
				help = "alias of --" + f.flag
			}
			switch p := v.Field(f.index).Addr().Interface().(type) {
			case *string:
				fs.StringVar(p, name, *p, help)
			case *int:
				fs.IntVar(p, name, *p, help)
			case *float64:
				fs.Float64Var(p, name, *p, help)
			case *bool:
				fs.BoolVar(p, name, *p, help)
			case *[]string:
				fs.StringSliceVar(p, name, *p, help)
			case *train.TemplateVars:
				fs.Var(p, name, help)
			}
		}
	}
}

// recipe is a YAML recipe as read: every key with its value, and the keys
// that set no option.
type recipe struct {
	path   string
	raw    map[string]any
	unused []string
}

// applyYAML reads a recipe file and sets every known key of o whose flag
// was not given on the command line (fs may be nil). The recipe's unused
// keys are sorted, so that the caller can list them in one line.
func applyYAML(o *train.Options, path string, fs *pflag.FlagSet) (recipe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return recipe{}, fmt.Errorf("config: %w", err)
	}
	r := recipe{path: path}
	if err := yaml.Unmarshal(b, &r.raw); err != nil {
		return recipe{}, fmt.Errorf("config: %s: %w", path, err)
	}
	raw := r.raw
	byKey := map[string]optionField{}
	for _, f := range optionFields() {
		byKey[f.key] = f
	}
	v := reflect.ValueOf(o).Elem()
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byKey[k]
		if !ok {
			r.unused = append(r.unused, k)
			continue
		}
		if fs != nil && (flagChanged(fs, f.flag) || flagChanged(fs, f.alias)) {
			continue // the command line wins
		}
		if err := setField(v.Field(f.index), raw[k]); err != nil {
			return recipe{}, fmt.Errorf("config: %s: key %s: %w", path, k, err)
		}
	}
	return r, nil
}

func flagChanged(fs *pflag.FlagSet, name string) bool {
	if name == "" || name == "-" {
		return false
	}
	f := fs.Lookup(name)
	return f != nil && f.Changed
}

// setField assigns a decoded YAML value to an Options field, converting
// between the number forms YAML produces (1e-6 may arrive as a string, and
// 1e6 steps as a float).
func setField(dst reflect.Value, val any) error {
	switch p := dst.Addr().Interface().(type) {
	case *string:
		switch x := val.(type) {
		case string:
			*p = x
		case nil:
			*p = ""
		default:
			return fmt.Errorf("want a string, got %v", val)
		}
	case *float64:
		x, err := train.YAMLNumber(val)
		if err != nil {
			return err
		}
		*p = x
	case *int:
		x, err := train.YAMLNumber(val)
		if err != nil {
			return err
		}
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return fmt.Errorf("want an integer, got %v", val)
		}
		*p = int(x)
	case *bool:
		x, ok := val.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %v", val)
		}
		*p = x
	case *[]string:
		switch x := val.(type) {
		case string:
			*p = []string{x}
		case []any:
			out := make([]string, 0, len(x))
			for _, it := range x {
				s, ok := it.(string)
				if !ok {
					return fmt.Errorf("want a list of strings, got %v", val)
				}
				out = append(out, s)
			}
			*p = out
		default:
			return fmt.Errorf("want a string or a list of strings, got %v", val)
		}
	case *train.TemplateVars:
		switch x := val.(type) {
		case map[string]any:
			*p = x
		case string:
			return p.Set(x)
		case nil:
			*p = nil
		default:
			return fmt.Errorf(`want a mapping such as {enable_thinking: false}, got %v`, val)
		}
	case *map[string]float64:
		x, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("want a mapping of dataset to fraction, got %v", val)
		}
		m := map[string]float64{}
		for k, fv := range x {
			f, err := train.YAMLNumber(fv)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			m[k] = f
		}
		*p = m
	default:
		return fmt.Errorf("unsupported option type %s", dst.Type())
	}
	return nil
}

// keyGiven reports whether the option with YAML key was given on the
// command line (by its flag or its alias).
func keyGiven(fs *pflag.FlagSet, key string) bool {
	for _, f := range optionFields() {
		if f.key == key {
			return flagChanged(fs, f.flag) || flagChanged(fs, f.alias)
		}
	}
	return false
}

// configHelp is the help of --config on the commands other than train.
const configHelp = "YAML recipe of the run ('relupo train --config'): its data, model and tokenizer keys apply as in training; command-line flags override it"

// applyConfig reads the YAML recipe at path (none when empty) into o: every
// key whose flag was not given on cmd's command line. With loss, the
// recipe's meaning beyond its values applies too (the loss its trainer
// would run, refused keys; see train.Recipe.Apply), as train and eval need.
// Notes and the keys that set nothing go to standard error.
func applyConfig(cmd *cobra.Command, o *train.Options, path string, loss bool) error {
	if path == "" {
		return nil
	}
	r, err := applyYAML(o, path, cmd.Flags())
	if err != nil {
		return usageError{err}
	}
	if loss {
		notes, err := train.Recipe(r.raw).Apply(o, func(key string) bool { return keyGiven(cmd.Flags(), key) })
		for _, n := range notes {
			fmt.Fprintf(os.Stderr, "relupo: %s: %s\n", path, n)
		}
		if err != nil {
			return usagef("config: %s: %v", path, err)
		}
	}
	unused := slices.DeleteFunc(r.unused, func(k string) bool { return slices.Contains(train.RecipeKeys, k) })
	if len(unused) > 0 {
		fmt.Fprintf(os.Stderr, "relupo: %s: keys with no effect in relupo: %s\n", path, strings.Join(unused, ", "))
	}
	return nil
}
