"""The 24 genres posterq predicts, in the model's output order."""

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama",
    "Family", "Fantasy", "History", "Horror", "Music", "Musical", "Mystery", "News", "Reality-TV",
    "Romance", "Sci-Fi", "Short", "Sport", "Thriller", "War", "Western",
)

# Spellings seen in poster datasets that mean one of the genres above.
ALIASES: dict[str, str] = {"Science Fiction": "Sci-Fi", "SciFi": "Sci-Fi", "Reality TV": "Reality-TV"}


def canonical(name: str) -> str | None:
    """Return the genre a label names, or None when it names none of the 24."""
    name = name.strip()
    name = ALIASES.get(name, name)
    return name if name in GENRES else None
