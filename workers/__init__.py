"""Ray actors that train one trial each on one GPU or CPU slot (see DESIGN.md; built by a later issue)."""
