"""A labelled paraphrase set for semantic search: each query shares no word with its target interaction.

``TARGETS``: (prompt, answer, query). ``DISTRACTORS``: other interactions of the same owner, on other
topics, so a hit in the top 3 means the right record beat plausible neighbours. ``check()`` verifies
the "no shared word" rule with the app's own tokenizer.
"""

from __future__ import annotations

from app.domain.search import tokenize

TARGETS: list[tuple[str, str, str]] = [
    ("What is the capital of France?", "The capital of France is Paris.", "which city governs french republic"),
    (
        "How do I bake sourdough bread at home?",
        "Mix flour, water and starter; let it rise overnight.",
        "recipe for a homemade loaf using wild yeast",
    ),
    (
        "Explain photosynthesis to a child",
        "Plants use sunlight to make food from air and water.",
        "how green leaves turn light into energy",
    ),
    (
        "My laptop battery drains very fast",
        "Lower screen brightness and close background apps.",
        "notebook computer losing charge quickly",
    ),
    (
        "Write a haiku about autumn leaves",
        "Red maple falls / quiet wind carries colour / ground remembers",
        "short japanese poem on fall foliage",
    ),
    (
        "How can I improve my sleep?",
        "Keep a regular schedule and avoid screens before bed.",
        "tips to rest better at night",
    ),
    ("Translate 'good morning' into Spanish", "Buenos días.", "say hello early in castilian"),
    (
        "What causes inflation?",
        "Too much money chasing too few goods raises prices.",
        "why does everything keep getting costlier",
    ),
    (
        "Best way to learn to play guitar",
        "Practice chords daily and learn simple songs first.",
        "beginner tips for strumming six strings",
    ),
    (
        "How do vaccines work?",
        "They train the immune system to recognise a germ.",
        "teaching our body defences against viruses with shots",
    ),
    (
        "Give me a quick pasta dinner idea",
        "Spaghetti with garlic, olive oil and chili flakes.",
        "fast italian noodle meal tonight",
    ),
    ("Why is the sky blue?", "Air scatters short wavelengths of sunlight more.", "reason heaven looks azure"),
    (
        "How do I fix a flat bicycle tyre?",
        "Remove the tube, find the puncture, patch it.",
        "repairing punctured bike wheel",
    ),
    ("Recommend a science fiction novel", "Try Dune by Frank Herbert.", "suggest futuristic space book"),
    (
        "How much water should I drink each day?",
        "About two litres for most adults.",
        "daily hydration amount per grown person",
    ),
    (
        "What is machine learning?",
        "Computers learning patterns from data instead of explicit rules.",
        "define ai systems that train on examples",
    ),
    (
        "How do I train my puppy to sit?",
        "Hold a treat above its nose and reward when it sits.",
        "teaching young dog obedience commands",
    ),
    (
        "Tips for a job interview",
        "Research the company and prepare examples of your work.",
        "getting ready to meet hiring manager",
    ),
    (
        "How do solar panels make electricity?",
        "Photovoltaic cells turn light into current.",
        "generating power from sun on rooftops",
    ),
    (
        "What's a good stretching routine for back pain?",
        "Try cat-cow, child's pose and knee hugs.",
        "exercises to relieve sore spine",
    ),
    (
        "How do I save money on groceries?",
        "Plan meals, buy in bulk and compare unit prices.",
        "cheaper food shopping strategies",
    ),
    (
        "Explain how a bitcoin transaction works",
        "Signed transfers are verified by miners into blocks.",
        "cryptocurrency payments confirmed on blockchain",
    ),
    (
        "What should I pack for a beach holiday?",
        "Sunscreen, swimwear, a hat and sandals.",
        "luggage list seaside vacation",
    ),
    (
        "How can I reduce stress at work?",
        "Take short breaks, prioritise tasks, breathe slowly.",
        "calming down office anxiety",
    ),
    ("What is the tallest mountain on Earth?", "Mount Everest, 8,849 metres.", "highest peak in world"),
]

DISTRACTORS: list[tuple[str, str]] = [
    ("How do I change a car tyre?", "Loosen the nuts, jack up the car, swap the wheel."),
    ("What is the population of Germany?", "About 84 million people."),
    ("Write a limerick about a cat", "There once was a cat from Peru..."),
    ("How do I make cold brew coffee?", "Steep coarse grounds in cold water for 12 hours."),
    ("What is the speed of light?", "About 300,000 kilometres per second."),
    ("How do I write a cover letter?", "Open with the role, show fit, close with thanks."),
    ("Explain the rules of chess", "Each piece moves differently; checkmate the king to win."),
    ("How do I grow tomatoes?", "Full sun, deep watering, and support stakes."),
    ("What are black holes?", "Regions where gravity is so strong light cannot escape."),
    ("Suggest a name for my startup", "How about Brightpath or Nimbus Labs?"),
    ("How do I clean a cast iron pan?", "Scrub with salt, rinse, dry, and oil lightly."),
    ("What is the GDP of Japan?", "Roughly 4 trillion US dollars."),
    ("How do I set up a Python virtual environment?", "Run python -m venv .venv and activate it."),
    ("What is the history of the Roman Empire?", "It rose from Rome and fell in the west in 476."),
    ("Recommend a board game for four players", "Try Catan or Ticket to Ride."),
    ("How do I knit a scarf?", "Cast on, knit every row, bind off."),
    ("What is the boiling point of water?", "100 degrees Celsius at sea level."),
    ("How do I invest in index funds?", "Open a brokerage account and buy a broad fund."),
    ("Explain quantum entanglement", "Linked particles share states however far apart."),
    ("How do I paint a room?", "Tape edges, prime, then roll two coats."),
    ("What is the best time to visit Norway?", "Summer for hiking, winter for northern lights."),
    ("Write a birthday message for my mother", "Happy birthday, Mum: thank you for everything."),
    ("How do airplanes stay in the air?", "Wings create lift as air flows over them."),
    ("What is a prime number?", "A number divisible only by one and itself."),
    ("How do I start running?", "Alternate walking and jogging, build up slowly."),
    ("Explain how a mortgage works", "A loan for a home repaid with interest over years."),
    ("What is the largest ocean?", "The Pacific Ocean."),
    ("How do I make a budget spreadsheet?", "List income, fixed costs, and variable spending."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci."),
    ("How do I care for a succulent?", "Bright light, little water, well-drained soil."),
]


def check() -> None:
    """Fail loudly when a query shares a word with its target (the set would test keywords, not meaning)."""
    for prompt, answer, query in TARGETS:
        shared = set(tokenize(query)) & set(tokenize(f"{prompt} {answer}"))
        if shared:
            raise ValueError(f"query {query!r} shares {sorted(shared)} with its target")
