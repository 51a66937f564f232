// The app's words in English and French: the language of the browser at first, switchable
// (and remembered). English text is the key; a missing translation falls back to it.
// `{name}` in a text is replaced by the parameter of that name.

export type Language = "en" | "fr";

const fr: Record<string, string> = {
  "Starting Missive…": "Démarrage de Missive…",
  "Missive is open in another tab.": "Missive est ouvert dans un autre onglet.",
  "Use here": "Utiliser ici",
  "Missive is now open in another tab. Close this one.":
    "Missive est maintenant ouvert dans un autre onglet. Fermez celui-ci.",
  "Create your account on your organisation's server.":
    "Créez votre compte sur le serveur de votre organisation.",
  Server: "Serveur",
  Address: "Adresse",
  "Invite code": "Code d'invitation",
  Register: "S'inscrire",
  "Registering…": "Inscription…",
  "Link to an existing account": "Lier à un compte existant",
  "Create a new account instead": "Créer plutôt un nouveau compte",
  "Recover an account (every device lost)": "Récupérer un compte (tous les appareils perdus)",
  "Lost every device? Type the recovery key you wrote down when you registered. Your other devices will be taken off your account.":
    "Tous vos appareils sont perdus ? Saisissez la clé de récupération notée à votre inscription. Vos autres appareils seront retirés de votre compte.",
  "Recovery key": "Clé de récupération",
  "Recovering…": "Récupération…",
  "Recover account": "Récupérer le compte",
  "Your recovery key": "Votre clé de récupération",
  "If you lose every device, this key is the only way back into your account. Write it down or print it, and keep it somewhere safe. It will not be shown again.":
    "Si vous perdez tous vos appareils, cette clé est le seul moyen de retrouver votre compte. Notez-la ou imprimez-la, et conservez-la en lieu sûr. Elle ne sera plus affichée.",
  "Print": "Imprimer",
  "I have written down my recovery key": "J'ai noté ma clé de récupération",
  "Continue": "Continuer",
  "Back up message history with the recovery key": "Sauvegarder l'historique des messages avec la clé de récupération",
  "Use the account of another device: on it, choose “Link a new device” (or run {command}) and type the code it shows.":
    "Utilisez le compte d'un autre appareil : sur celui-ci, choisissez « Lier un nouvel appareil » (ou lancez {command}) et saisissez le code affiché.",
  "Link code": "Code de liaison",
  "Link this browser": "Lier ce navigateur",
  "Linking… (keep the other device open)": "Liaison… (gardez l'autre appareil ouvert)",
  Devices: "Appareils",
  "Enable notifications": "Activer les notifications",
  Language: "Langue",
  "Offline: messages will be sent when the connection is back":
    "Hors ligne : les messages partiront au retour de la connexion",
  "Security alerts": "Alertes de sécurité",
  Conversations: "Conversations",
  "New conversation": "Nouvelle conversation",
  "Filter conversations": "Filtrer les conversations",
  Filter: "Filtrer",
  "{n} unread": "{n} non lus",
  "Choose a conversation, or start a new one.":
    "Choisissez une conversation, ou commencez-en une.",
  "Conversation {id}": "Conversation {id}",
  "A message this version cannot display (update Missive)":
    "Un message que cette version ne sait pas afficher (mettez Missive à jour)",
  "Back to conversations": "Retour aux conversations",
  "Safety number": "Numéro de sécurité",
  Members: "Membres",
  "Not sent: {error}": "Non envoyé : {error}",
  Retry: "Réessayer",
  "Sending…": "Envoi…",
  "{sender}, sending": "{sender}, envoi en cours",
  Message: "Message",
  Send: "Envoyer",
  "Name at least one member.": "Indiquez au moins un membre.",
  Name: "Nom",
  Cancel: "Annuler",
  Off: "Désactivés",
  "5 minutes": "5 minutes",
  "1 hour": "1 heure",
  "1 day": "1 jour",
  "1 week": "1 semaine",
  "4 weeks": "4 semaines",
  "{n} seconds": "{n} secondes",
  "Disappearing messages": "Messages éphémères",
  "{sender} set disappearing messages to {timer}": "{sender} a réglé les messages éphémères sur {timer}",
  "{sender} turned disappearing messages off": "{sender} a désactivé les messages éphémères",
  "This message was deleted": "Ce message a été supprimé",
  edited: "modifié",
  "Disappears at {time}": "Disparaît à {time}",
  "In reply to": "En réponse à",
  "A message not on this device (sent before it joined, or erased)":
    "Un message absent de cet appareil (envoyé avant son arrivée, ou effacé)",
  "A message from {sender} could not be read": "Un message de {sender} n'a pas pu être lu",
  "A message could not be read": "Un message n'a pas pu être lu",
  "Why: {reason}": "Pourquoi : {reason}",
  "{sender} is typing…": "{sender} écrit…",
  "Send read receipts": "Envoyer les confirmations de lecture",
  Reactions: "Réactions",
  "{emoji} {n}: {who}": "{emoji} {n} : {who}",
  "Read by {n} of {total}": "Lu par {n} sur {total}",
  "Delivered to {n} of {total}": "Remis à {n} sur {total}",
  Sent: "Envoyé",
  Reply: "Répondre",
  React: "Réagir",
  Edit: "Modifier",
  Delete: "Supprimer",
  "Delete this message for everyone?": "Supprimer ce message pour tout le monde ?",
  "Delete for everyone": "Supprimer pour tout le monde",
  "Choose a reaction": "Choisir une réaction",
  "React with {emoji}": "Réagir avec {emoji}",
  "Replying to {sender}: {text}": "Réponse à {sender} : {text}",
  "Editing your message": "Modification de votre message",
  Save: "Enregistrer",
  "Search messages": "Rechercher dans les messages",
  "{sender} labelled the conversation {label}": "{sender} a marqué la conversation {label}",
  "{sender} took the label off": "{sender} a retiré le marquage",
  forwarded: "transféré",
  Forward: "Transférer",
  "Forward to": "Transférer vers",
  "Choose a conversation": "Choisir une conversation",
  "Send there": "Envoyer",
  "Sensitivity label": "Marquage de sensibilité",
  "No label": "Sans marquage",
  "Search results": "Résultats de la recherche",
  "No message matches.": "Aucun message ne correspond.",
  Create: "Créer",
  "Creating…": "Création…",
  Close: "Fermer",
  "Revoke device {id}? It will read nothing sent from now on.":
    "Révoquer l'appareil {id} ? Il ne lira plus rien de ce qui sera envoyé.",
  "Loading…": "Chargement…",
  "Your signed device list (version {version}) names the devices other people's apps add to your conversations.":
    "Votre liste d'appareils signée (version {version}) désigne les appareils que les applications des autres ajoutent à vos conversations.",
  "this device": "cet appareil",
  "not certified by you: never used": "non certifié par vous : jamais utilisé",
  "not on your device list": "absent de votre liste d'appareils",
  "Revoke device {id}": "Révoquer l'appareil {id}",
  Revoke: "Révoquer",
  "Revoking…": "Révocation…",
  "Link a device": "Lier un appareil",
  "Link a new device": "Lier un nouvel appareil",
  "On the new device, choose “Link to an existing account” and type:":
    "Sur le nouvel appareil, choisissez « Lier à un compte existant » et saisissez :",
  "QR code of the link code": "QR code du code de liaison",
  "Waiting for the new device…": "En attente du nouvel appareil…",
  "Preparing a link code…": "Préparation d'un code de liaison…",
  "Linked device {id}: added to {conversations} conversations, {messages} messages handed over.":
    "Appareil {id} lié : ajouté à {conversations} conversations, {messages} messages transmis.",
  "Not linked: {error}": "Non lié : {error}",
  "None: nothing was refused.": "Aucune : rien n'a été refusé.",
  "Safety number with {address}": "Numéro de sécurité avec {address}",
  "Compare it with theirs, in person or on a call you trust: it is the same on both sides.":
    "Comparez-le avec le sien, en personne ou lors d'un appel de confiance : il est identique des deux côtés.",
  "Safety number digits": "Chiffres du numéro de sécurité",
  "QR code of the safety number": "QR code du numéro de sécurité",
  Verified: "Vérifié",
  "Mark as verified": "Marquer comme vérifié",
  you: "vous",
  "Remove {user}": "Retirer {user}",
  Remove: "Retirer",
  "Remove {user}? They will read nothing sent from now on.":
    "Retirer {user} ? Il ne lira plus rien de ce qui sera envoyé.",
  "Add members": "Ajouter des membres",
  Add: "Ajouter",
  "Working…": "En cours…",
  "Attach file": "Joindre un fichier",
  "Cancel the link": "Annuler la liaison",
  "Earlier messages": "Messages précédents",
  "Uploading {name}": "Envoi de {name}",
  "Downloading {name}": "Téléchargement de {name}",
  "Download {name}": "Télécharger {name}",
  Download: "Télécharger",
  "Show image": "Afficher l'image",
  Read: "Lire",
  "Could not open the file: {error}": "Impossible d'ouvrir le fichier : {error}",
  "Files of this conversation can be viewed in the app only.":
    "Les fichiers de cette conversation ne peuvent être consultés que dans l'application.",
  "Files of this conversation cannot be opened.": "Les fichiers de cette conversation ne peuvent pas être ouverts.",
  "Drop files to send them": "Déposez des fichiers pour les envoyer",
};

const STORAGE_KEY = "missive-language";

function initial(): Language {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "fr") return saved;
  return navigator.language.toLowerCase().startsWith("fr") ? "fr" : "en";
}

let current: Language = initial();
document.documentElement.lang = current;

export function language(): Language {
  return current;
}

/** Switches the language (remembered in this browser). The caller re-renders. */
export function setLanguage(next: Language) {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
}

/** `text` in the current language, with `{name}` replaced by `params.name`. */
export function t(text: string, params: Record<string, string | number> = {}): string {
  const found = current === "fr" ? (fr[text] ?? text) : text;
  return found.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}
