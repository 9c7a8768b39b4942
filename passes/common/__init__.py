"""Passes every flow uses: canonicalize, fold_bn, opset_upgrade."""
