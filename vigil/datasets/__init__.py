"""Public data sets in their own file formats, shared by the stages that train on them and replay them."""
