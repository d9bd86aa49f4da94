"""facesync."""
