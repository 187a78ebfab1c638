package com.recipeml.client;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import java.util.List;
import java.util.Map;

/**
 * The request and response bodies of the Recipe ML API, as typed records.
 *
 * <p>They mirror the service's OpenAPI document ({@code /docs.json}, shown at {@code /docs}):
 * snake_case on the wire, named component by component ({@code @JsonProperty} works with every
 * Jackson 2.12+; a naming strategy on records needs 2.15), except the interaction event, which is
 * the camelCase event the backend also publishes to Kafka. Request fields left {@code null} are
 * not sent, so the service applies its defaults.
 */
public final class Models {
    private Models() {}

    // -- requests -------------------------------------------------------------------

    /**
     * Personal recommendations for one user; every field but {@code userId} is optional.
     *
     * <p>{@code requireTags}: only recipes carrying every one of these catalogue tags (a recipe without a
     * catalogue record carries none); {@code excludeTags}: never a recipe carrying any of them. The same two
     * filters are on every recommendation request ({@code withRequireTags}, {@code withExcludeTags}).
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record RecipeRequest(
            @JsonProperty("user_id") long userId,
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore,
            @JsonProperty("require_tags") List<String> requireTags,
            @JsonProperty("exclude_tags") List<String> excludeTags) {
        /** Without tag filters (the constructor of the client before the catalogue). */
        public RecipeRequest(
                long userId, Integer topK, List<Long> excludeRecipeIds, List<Long> includeRecipeIds, Double diversity,
                Double maxFsaScore) {
            this(userId, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, null, null);
        }

        public static RecipeRequest of(long userId, int topK) {
            return new RecipeRequest(userId, topK, null, null, null, null);
        }

        public RecipeRequest withRequireTags(List<String> tags) {
            return new RecipeRequest(userId, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, tags, excludeTags);
        }

        public RecipeRequest withExcludeTags(List<String> tags) {
            return new RecipeRequest(userId, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, requireTags, tags);
        }
    }

    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record SimilarUsersRequest(@JsonProperty("user_id") long userId, @JsonProperty("top_k") Integer topK) {}

    /** "More like this": recipes close to {@code recipeId}, with the filters of a recommendation. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record SimilarRecipesRequest(
            @JsonProperty("recipe_id") long recipeId,
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore,
            @JsonProperty("require_tags") List<String> requireTags,
            @JsonProperty("exclude_tags") List<String> excludeTags) {
        /** Without tag filters (the constructor of the client before the catalogue). */
        public SimilarRecipesRequest(
                long recipeId, Integer topK, List<Long> excludeRecipeIds, List<Long> includeRecipeIds, Double diversity,
                Double maxFsaScore) {
            this(recipeId, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, null, null);
        }

        public static SimilarRecipesRequest of(long recipeId, int topK) {
            return new SimilarRecipesRequest(recipeId, topK, null, null, null, null);
        }

        public SimilarRecipesRequest withRequireTags(List<String> tags) {
            return new SimilarRecipesRequest(
                    recipeId, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, tags, excludeTags);
        }

        public SimilarRecipesRequest withExcludeTags(List<String> tags) {
            return new SimilarRecipesRequest(
                    recipeId, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, requireTags, tags);
        }
    }

    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record BatchRequest(
            @JsonProperty("user_ids") List<Long> userIds,
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore,
            @JsonProperty("require_tags") List<String> requireTags,
            @JsonProperty("exclude_tags") List<String> excludeTags) {
        /** Without tag filters (the constructor of the client before the catalogue). */
        public BatchRequest(
                List<Long> userIds, Integer topK, List<Long> excludeRecipeIds, List<Long> includeRecipeIds,
                Double diversity, Double maxFsaScore) {
            this(userIds, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, null, null);
        }

        public static BatchRequest of(List<Long> userIds, int topK) {
            return new BatchRequest(userIds, topK, null, null, null, null);
        }

        public BatchRequest withRequireTags(List<String> tags) {
            return new BatchRequest(userIds, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, tags, excludeTags);
        }

        public BatchRequest withExcludeTags(List<String> tags) {
            return new BatchRequest(userIds, topK, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, requireTags, tags);
        }
    }

    /** Without recent recipes: trending; with them: folded in from a new user's first recipes. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record ColdStartRequest(
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("recent_recipe_ids") List<Long> recentRecipeIds,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore,
            @JsonProperty("require_tags") List<String> requireTags,
            @JsonProperty("exclude_tags") List<String> excludeTags) {
        /** Without tag filters (the constructor of the client before the catalogue). */
        public ColdStartRequest(
                Integer topK, List<Long> recentRecipeIds, List<Long> excludeRecipeIds, List<Long> includeRecipeIds,
                Double diversity, Double maxFsaScore) {
            this(topK, recentRecipeIds, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, null, null);
        }

        public static ColdStartRequest of(int topK, List<Long> recentRecipeIds) {
            return new ColdStartRequest(topK, recentRecipeIds, null, null, null, null);
        }

        public ColdStartRequest withRequireTags(List<String> tags) {
            return new ColdStartRequest(
                    topK, recentRecipeIds, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, tags, excludeTags);
        }

        public ColdStartRequest withExcludeTags(List<String> tags) {
            return new ColdStartRequest(
                    topK, recentRecipeIds, excludeRecipeIds, includeRecipeIds, diversity, maxFsaScore, requireTags, tags);
        }
    }

    /**
     * One interaction, exactly the event published to the Kafka topic {@code interactions}
     * (camelCase). {@code rating} (1-5) only with {@code "rate"}; {@code timestamp} is ISO 8601
     * ({@code Instant.toString()}); both it and {@code eventId} may be null.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record InteractionEvent(
            long userId,
            long recipeId,
            String interactionType,
            Integer rating,
            String timestamp,
            String eventId) {}

    /**
     * A recipe's catalogue record, the body of {@code PUT /api/recipes/{recipe_id}}: it replaces the whole
     * record, and a field left null is not sent, so it takes the service's default (no tags, available, no
     * title or publication time, {@code updatedAt} = when the service receives it).
     *
     * <p>{@code tags}: at most 32, lower-case letters, digits and {@code : . _ -} ({@code "vegetarian"},
     * {@code "contains:peanut"}); {@code available}: false = never recommend it; {@code publishedAt} and
     * {@code updatedAt}: ISO 8601 ({@code Instant.toString()}). The last write by {@code updatedAt} wins, so a
     * late older write never undoes a newer one.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record RecipeFields(
            List<String> tags,
            Boolean available,
            @JsonProperty("published_at") String publishedAt,
            String title,
            @JsonProperty("updated_at") String updatedAt) {
        /** An available recipe with these tags and nothing else. */
        public static RecipeFields of(List<String> tags) {
            return new RecipeFields(tags, null, null, null, null);
        }
    }

    /** One record of {@code POST /api/recipes/bulk}: the recipe and its {@link RecipeFields}. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record RecipeUpsert(
            @JsonProperty("recipe_id") long recipeId,
            List<String> tags,
            Boolean available,
            @JsonProperty("published_at") String publishedAt,
            String title,
            @JsonProperty("updated_at") String updatedAt) {
        public static RecipeUpsert of(long recipeId, RecipeFields fields) {
            return new RecipeUpsert(
                    recipeId, fields.tags(), fields.available(), fields.publishedAt(), fields.title(), fields.updatedAt());
        }
    }

    /** Many catalogue records at once (at most CATALOGUE_BULK_LIMIT, 1000 by default), applied all or none. */
    public record BulkRecipesRequest(List<RecipeUpsert> recipes) {}

    // -- responses ------------------------------------------------------------------

    public record Recommendation(@JsonProperty("recipe_id") long recipeId, double score, int rank) {}

    public record SimilarUser(@JsonProperty("user_id") long userId, double score, int rank) {}

    /**
     * The published values of {@code model_used}: the links of the fallback chain. Jackson refuses a value
     * outside them (its default), so a service that drifts from the contract fails loudly here.
     */
    public enum ModelUsed {
        @JsonProperty("two_tower") TWO_TOWER,
        @JsonProperty("als") ALS,
        @JsonProperty("popularity") POPULARITY
    }

    /**
     * {@code modelUsed}: two_tower, else als, else popularity (the fallback chain); {@code personalizedBy}: the
     * personal scorer of the personal positions ({@code "ease"}), or null; {@code modelVersion}: the store tag
     * (name:version) of the version that answered; {@code recommendationId}: this answer's id, to send back as
     * {@code recommendationId} with the interactions it led to; {@code variant}: the experiment arm that answered;
     * {@code exhausted}: fewer than {@code topK} recipes were left to return (the tag filters,
     * {@code includeRecipeIds}, the health filter or the user's history allowed no more), so the list is shorter
     * than asked, not padded (also on cold-start, similar recipes and the batch's entries).
     */
    public record RecipeRecommendations(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("personalized_by") String personalizedBy, @JsonProperty("latency_ms") double latencyMs, boolean cached, boolean exhausted, @JsonProperty("user_id") long userId, List<Recommendation> recommendations) {}

    public record ColdStartRecommendations(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("personalized_by") String personalizedBy, @JsonProperty("latency_ms") double latencyMs, boolean cached, boolean exhausted, List<Recommendation> recommendations) {}

    public record SimilarUsers(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("latency_ms") double latencyMs, boolean cached, @JsonProperty("user_id") long userId, @JsonProperty("similar_users") List<SimilarUser> similarUsers) {}

    public record SimilarRecipes(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("latency_ms") double latencyMs, boolean cached, boolean exhausted, @JsonProperty("recipe_id") long recipeId, @JsonProperty("similar_recipes") List<Recommendation> similarRecipes) {}

    /** A batch entry: {@link BatchRecipes} ({@code status: "ok"}) or {@link BatchFailure} ({@code "error"}). */
    @JsonTypeInfo(use = JsonTypeInfo.Id.NAME, include = JsonTypeInfo.As.EXISTING_PROPERTY, property = "status", visible = true)
    @JsonSubTypes({
        @JsonSubTypes.Type(value = BatchRecipes.class, name = "ok"),
        @JsonSubTypes.Type(value = BatchFailure.class, name = "error")
    })
    public sealed interface BatchEntry permits BatchRecipes, BatchFailure {
        long userId();
    }

    public record BatchRecipes(
            String status,
            @JsonProperty("recommendation_id") String recommendationId,
            String variant,
            @JsonProperty("model_used") ModelUsed modelUsed,
            @JsonProperty("model_version") String modelVersion,
            @JsonProperty("personalized_by") String personalizedBy,
            @JsonProperty("latency_ms") double latencyMs,
            boolean cached,
            boolean exhausted,
            @JsonProperty("user_id") long userId,
            List<Recommendation> recommendations)
            implements BatchEntry {}

    public record BatchFailure(String status, @JsonProperty("user_id") long userId, Problem problem) implements BatchEntry {}

    public record BatchResponse(List<BatchEntry> results, @JsonProperty("latency_ms") double latencyMs) {}

    public record InteractionAccepted(boolean applied, boolean duplicate, @JsonProperty("event_id") String eventId) {}

    /** {@code catalogue}: how many recipes have a catalogue record, how many of them are hidden, and its version. */
    public record Health(
            String status, Map<String, String> models, String redis, String kafka, CatalogueHealth catalogue) {}

    /**
     * {@code recipes}: recipes with a catalogue record; {@code hidden}: of them, those with {@code available:
     * false}; {@code version}: the catalogue version the answers are filtered with (-1: not read yet).
     */
    public record CatalogueHealth(long recipes, long hidden, long version) {}

    /**
     * A recipe as the service sees it ({@code GET /api/recipes/{recipe_id}}): its catalogue record ({@code
     * inCatalogue} false: no record yet, so untagged and available), whether the models were trained on it, and
     * its interactions applied since training. {@code publishedAt} and {@code updatedAt} are ISO 8601
     * ({@code Instant.parse}), or null.
     */
    public record RecipeDetails(
            @JsonProperty("recipe_id") long recipeId,
            @JsonProperty("in_catalogue") boolean inCatalogue,
            List<String> tags,
            boolean available,
            @JsonProperty("published_at") String publishedAt,
            String title,
            @JsonProperty("updated_at") String updatedAt,
            @JsonProperty("known_to_models") boolean knownToModels,
            @JsonProperty("live_interactions") long liveInteractions) {}

    /**
     * The recipe after a {@code PUT}: its {@link RecipeDetails} and {@code applied}, false when the stored record
     * was written later (by {@code updatedAt}) or is this same write: nothing changed, the body shows the record
     * that stands.
     */
    public record RecipeWritten(
            @JsonProperty("recipe_id") long recipeId,
            @JsonProperty("in_catalogue") boolean inCatalogue,
            List<String> tags,
            boolean available,
            @JsonProperty("published_at") String publishedAt,
            String title,
            @JsonProperty("updated_at") String updatedAt,
            @JsonProperty("known_to_models") boolean knownToModels,
            @JsonProperty("live_interactions") long liveInteractions,
            boolean applied) {
        public RecipeDetails details() {
            return new RecipeDetails(
                    recipeId, inCatalogue, tags, available, publishedAt, title, updatedAt, knownToModels, liveInteractions);
        }
    }

    public record BulkResult(@JsonProperty("recipe_id") long recipeId, boolean applied) {}

    /** {@code applied}: records that changed the catalogue; {@code stale}: the others; one result per record, in order. */
    public record BulkRecipesWritten(int applied, int stale, List<BulkResult> results) {}

    /** One invalid field of a request ({@code "body"} for the whole body). */
    public record FieldError(String field, String message, String type) {}

    /**
     * An RFC 9457 problem ({@code application/problem+json}): what every error of the API is.
     * Spring's {@code ProblemDetail} reads the same body.
     */
    public record Problem(
            String type,
            String title,
            int status,
            String detail,
            String instance,
            List<FieldError> errors,
            @JsonProperty("user_id") Long userId,
            @JsonProperty("recipe_id") Long recipeId,
            @JsonProperty("cold_start") String coldStart) {}
}
