"""Review tools: what differs between configs and whether a run used what its config says.

diff       `nepa3d-config diff`: the differing fields of configs (defaults and derived values
           resolved), or `--run` a run directory / an original `.pt` against a config file
run_check  a run record (`config.json`) or a `.pt`'s args vs a config, as `Mismatch` rows
mix_check  the mixture an original `.pt` trained on (its YAML) vs a config's inline mixture

They read configs, run records and checkpoints and change nothing; a run directory is
untrusted input (nothing it names is imported, a `.pt` is read weights-only).
"""
