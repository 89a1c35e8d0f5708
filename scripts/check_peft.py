# Independent reader: Python's json + struct + numpy, no bpo or Go code.
import json, struct, sys, re
import numpy as np
d = sys.argv[1]
raw = open(d + "/adapter_model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); data = raw[8 + n:]
meta = hdr.pop("__metadata__")
cfg = json.load(open(d + "/adapter_config.json"))
pat = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.lora_([AB])\.weight$")
end = 0
for name in sorted(hdr, key=lambda k: hdr[k]["data_offsets"][0]):
    e = hdr[name]; assert pat.match(name), name
    a, b = e["data_offsets"]; assert a == end; end = b
    t = np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"])
    assert e["dtype"] == "F32" and np.isfinite(t).all()
    r = t.shape[0] if name.endswith("lora_A.weight") else t.shape[1]
    assert r == cfg["r"], (name, t.shape)
assert end == len(data)
print("metadata", meta)
print(len(hdr), "tensors, all F32, rank", cfg["r"], "alpha", cfg["lora_alpha"], "targets", cfg["target_modules"])
for k in ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
          "base_model.model.model.layers.4.mlp.down_proj.lora_A.weight", "base_model.model.model.layers.4.mlp.down_proj.lora_B.weight"]:
    print(k, hdr[k]["shape"])
