// Removed when the first io/ source lands.
