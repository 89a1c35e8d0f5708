package peft

import "testing"

// FuzzParseKey: any key either parses to a known projection whose PEFT key parses back to the
// same, or fails with an error; never a panic.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
		"base_model.model.model.layers.31.mlp.down_proj.lora_B.weight",
		"base_model.model.model.layers.-1.mlp.up_proj.lora_B.weight",
		"base_model.model.model.embed_tokens.lora_embedding_A",
		"base_model.model.lm_head.lora_A.weight", "", "base_model.model.model.layers.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		layer, mod, which, err := parseKey(key)
		if err != nil {
			return
		}
		i := moduleIndex(mod)
		if i < 0 || layer < 0 || (which != "A" && which != "B") {
			t.Fatalf("%q parsed to layer %d, module %q, %q", key, layer, mod, which)
		}
		back := peftKey(layer, modules[i], which)
		if l2, m2, w2, err := parseKey(back); err != nil || l2 != layer || m2 != mod || w2 != which {
			t.Fatalf("%q parsed to %d %s %s, whose key %q parses to %d %s %s (%v)", key, layer, mod, which, back, l2, m2, w2, err)
		}
	})
}

// FuzzConfig: any adapter_config.json either parses and passes or fails the checks with an error.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"]}`))
	f.Add([]byte(`{"peft_type":"LORA","target_modules":"model.*(q|v)_proj"}`))
	f.Add([]byte(`{"peft_type":"LORA","target_modules":[1,null],"use_dora":true}`))
	f.Add([]byte(`{"r":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		if checkConfig(c) == nil && (c.R <= 0 || c.LoraAlpha <= 0 || c.UseDoRA) {
			t.Fatalf("accepted config %+v", c)
		}
	})
}
