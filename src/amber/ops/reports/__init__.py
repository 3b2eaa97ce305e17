"""Reports and their pure cores: capacity forecast, ..."""
