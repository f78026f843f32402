// Removed when the first weights/ source lands.
