"""CPAC-UDF: a ridge probe on hidden states predicts unsigned distances (the `cpac_udf` job)."""
