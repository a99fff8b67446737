"""Model runners shared by the stages."""
