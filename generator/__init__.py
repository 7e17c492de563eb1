"""Training, integer model export and C emission."""
