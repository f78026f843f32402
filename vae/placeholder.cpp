// Removed when the first vae/ source lands.
